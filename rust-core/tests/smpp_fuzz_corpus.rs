//! Replays the committed cargo-fuzz corpus (fuzz/corpus/smpp_pdu) through the check
//! the fuzz target runs, so CI covers it without cargo-fuzz or nightly.

use std::path::Path;

use smslink::fuzzing::check_smpp_pdu;

#[test]
fn replay_smpp_pdu_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/smpp_pdu");
    let mut files = 0;
    let mut pdus = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        pdus += check_smpp_pdu(&data);
        files += 1;
    }
    assert!(files >= 10, "corpus at {} has {files} files", dir.display());
    // The seeds alone hold 37 valid PDUs, every type among them.
    assert!(pdus >= 37, "only {pdus} PDUs decoded from the corpus");
}
