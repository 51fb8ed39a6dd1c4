//! SMPP codec throughput on a submit_sm carrying a full 140-octet short message
//! (packets per second = elements per second in criterion's output).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use smslink::smpp::{
    encode, npi, registered_delivery, ton, Body, Decoder, Pdu, SmeAddr, SubmitSm, DEFAULT_MAX_PDU,
};

fn full_submit() -> Pdu {
    let text = "Your code is 482913. It expires in 10 minutes; do not share it with anyone. \
                If you did not ask for it, call us on 0800 000 000 today. Thanks";
    assert_eq!(text.len(), 140);
    Pdu::new(
        13,
        Body::SubmitSm(SubmitSm {
            source: SmeAddr::new(ton::UNKNOWN, npi::ISDN, "12345").unwrap(),
            destination: SmeAddr::new(ton::INTERNATIONAL, npi::ISDN, "4670000001").unwrap(),
            registered_delivery: registered_delivery::RECEIPT_ALWAYS,
            short_message: text.as_bytes().to_vec(),
            ..SubmitSm::default()
        }),
    )
}

fn bench(c: &mut Criterion) {
    let pdu = full_submit();
    let mut wire = Vec::new();
    encode(&pdu, &mut wire).unwrap();
    let mut group = c.benchmark_group(format!("smpp_submit_sm_{}B", wire.len()));
    group.throughput(Throughput::Elements(1));

    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode(black_box(&pdu), &mut out).unwrap();
            black_box(out.len())
        })
    });

    group.bench_function("decode", |b| {
        let mut decoder = Decoder::new(DEFAULT_MAX_PDU);
        b.iter(|| {
            decoder.push(black_box(&wire));
            match decoder.poll() {
                Some(Ok(p)) => black_box(p.sequence_number),
                _ => 0,
            }
        })
    });

    // 64 PDUs per push, as from one socket read.
    let batch: Vec<u8> = wire.repeat(64);
    group.throughput(Throughput::Elements(64));
    group.bench_function("decode_batch64", |b| {
        let mut decoder = Decoder::new(DEFAULT_MAX_PDU);
        b.iter(|| {
            decoder.push(black_box(&batch));
            let mut n = 0;
            while let Some(Ok(p)) = decoder.poll() {
                n += p.sequence_number;
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
