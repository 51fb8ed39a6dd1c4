//! CIMD2 codec throughput on a typical ~120-byte submit (packets per second =
//! elements per second in criterion's output).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use smslink::cimd2::{encode, param, Decoded, Decoder, Operation, Packet};

fn typical_submit() -> Packet {
    Packet::new(Operation::Submit, 13)
        .with(param::DESTINATION_ADDRESS, "4670000001")
        .with(param::ORIGINATING_ADDRESS, "12345")
        .with(param::STATUS_REPORT_REQUEST, "14")
        .with(param::REPLY_PATH, "0")
        .with(param::MORE_MESSAGES_TO_SEND, "0")
        .with(
            param::USER_DATA,
            "Your code is 482913. It expires in 10 minutes; do not share it _Oa all.",
        )
}

fn bench(c: &mut Criterion) {
    let packet = typical_submit();
    let mut wire = Vec::new();
    encode(&packet, true, &mut wire);
    let mut group = c.benchmark_group(format!("cimd2_submit_{}B", wire.len()));
    group.throughput(Throughput::Elements(1));

    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode(black_box(&packet), true, &mut out);
            black_box(out.len())
        })
    });

    group.bench_function("decode", |b| {
        let mut decoder = Decoder::new(4096);
        b.iter(|| {
            decoder.push(black_box(&wire));
            match decoder.poll() {
                Some(Decoded::Packet(p)) => black_box(p.param_count()),
                _ => 0,
            }
        })
    });

    // 64 packets per push, as from one socket read.
    let batch: Vec<u8> = wire.repeat(64);
    group.throughput(Throughput::Elements(64));
    group.bench_function("decode_batch64", |b| {
        let mut decoder = Decoder::new(4096);
        b.iter(|| {
            decoder.push(black_box(&batch));
            let mut n = 0;
            while let Some(item) = decoder.poll() {
                if let Decoded::Packet(p) = item {
                    n += p.param_count();
                }
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
