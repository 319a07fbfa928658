//! Micro-benchmarks of the WebSocket layer's hot paths: frame header parse and
//! encode, masking, UTF-8 validation, permessage-deflate both ways, and preparing
//! a message once for many sockets.
//!
//!     cargo bench --bench ws

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushwire_ws::deflate::{Inflater, compress};
use pushwire_ws::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, apply_mask};
use pushwire_ws::{Prepared, Utf8Bytes};

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode: OpCode::Text,
        mask: Some([1, 2, 3, 4]),
        payload_len: 300,
    };
    let mut encoded = [0u8; MAX_HEADER_LEN];
    let len = header.encode(&mut encoded);
    group.bench_function("parse header (masked, 16-bit length)", |b| {
        b.iter(|| FrameHeader::parse(black_box(&encoded[..len])))
    });
    group.bench_function("encode header", |b| {
        b.iter(|| {
            let mut out = [0u8; MAX_HEADER_LEN];
            black_box(black_box(&header).encode(&mut out))
        })
    });
    for size in [64usize, 4096, 65536] {
        let mut data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("mask {size} B"), |b| {
            b.iter(|| apply_mask(black_box(&mut data), [0x37, 0xfa, 0x21, 0x3d], 0))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (name, text) in [
        ("ascii 4 KiB", "a".repeat(4096)),
        ("mixed 4 KiB", "κόσμε € ok 😀 ".repeat(4096 / 24)),
    ] {
        let bytes = Bytes::from(text);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| Utf8Bytes::try_from_bytes(black_box(bytes.clone())))
        });
    }
    group.finish();
}

fn deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    let json =
        r#"{"topic":"prices","offset":4242,"data":{"symbol":"ACME","bid":101.25,"ask":101.5}}"#
            .repeat(50);
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("compress 4 KiB JSON (level 3)", |b| {
        b.iter(|| compress(black_box(json.as_bytes()), 15, 3, MAX_HEADER_LEN))
    });
    let (compressed, compressed_len) =
        compress(json.as_bytes(), 15, 3, 0).expect("JSON compresses");
    group.bench_function("inflate 4 KiB JSON", |b| {
        b.iter(|| {
            let mut out = BytesMut::new();
            let mut inflater = Inflater::for_one_message();
            let result = inflater.inflate(
                black_box(&compressed[..compressed_len]),
                true,
                &mut out,
                1 << 20,
            );
            inflater.finish();
            black_box((result, out))
        })
    });
    group.finish();
}

fn prepared(c: &mut Criterion) {
    let mut group = c.benchmark_group("prepared");
    let text = "a price update for every subscriber: ".repeat(4);
    group.bench_function("prepare a 148 B text message", |b| {
        b.iter(|| Prepared::new(black_box(text.clone())))
    });
    group.finish();
}

criterion_group!(benches, frames, utf8, deflate, prepared);
criterion_main!(benches);
