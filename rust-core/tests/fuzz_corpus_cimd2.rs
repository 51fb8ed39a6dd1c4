//! Replays the committed cargo-fuzz corpus (fuzz/corpus/cimd2_decoder) through the
//! check the fuzz target runs, so CI covers it without cargo-fuzz or nightly.

use std::path::Path;

use smslink::fuzzing::check_cimd2_decoder;

#[test]
fn replay_cimd2_decoder_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/cimd2_decoder");
    let mut files = 0;
    let mut packets = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        packets += check_cimd2_decoder(&data);
        files += 1;
    }
    assert!(files >= 3, "corpus at {} has {files} files", dir.display());
    // The seeds alone hold two valid packets.
    assert!(
        packets >= 2,
        "only {packets} packets decoded from the corpus"
    );
}
