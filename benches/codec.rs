//! Codec micro-benchmarks: the frames of the publish and deliver hot paths, decoded and encoded
//! with the broker's own codec. `HARE_BENCH_SMOKE=1` runs each briefly with tiny settings, so
//! CI can keep the benches compiling and running without timing anything.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hare::protocol::{
    parse_frame, write_content, write_method_frame, BasicDeliver, BasicProperties, BasicPublish,
    ContentHeader, FrameType, Method, ShortStr,
};

mod support;

/// One published message as a client sends it: method, header and body frames.
fn publish_frames(body_size: usize) -> Vec<u8> {
    let properties = BasicProperties {
        delivery_mode: Some(2),
        content_type: Some(ShortStr::from_static("application/octet-stream")),
        ..Default::default()
    };
    let mut out = Vec::new();
    write_method_frame(
        &mut out,
        1,
        &Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from_static("amq.direct"),
            routing_key: ShortStr::from_static("bench.key"),
            ..Default::default()
        }),
    );
    write_content(
        &mut out,
        1,
        60,
        &properties.to_raw(),
        &vec![7u8; body_size],
        131_072,
    );
    out
}

fn decode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_publish");
    for body_size in [16usize, 1024] {
        let wire = publish_frames(body_size);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{body_size}B"), |b| {
            b.iter(|| {
                let mut buffer = BytesMut::from(&wire[..]);
                let mut checksum = 0usize;
                while let Some(frame) = parse_frame(&mut buffer, 131_072).expect("valid frames") {
                    match frame.frame_type {
                        FrameType::Method => {
                            let method = Method::decode(&frame.payload).expect("valid method");
                            checksum += usize::from(method.method_id());
                        }
                        FrameType::Header => {
                            let header = ContentHeader::decode(&frame.payload).expect("header");
                            checksum += header.properties_raw.len();
                        }
                        _ => checksum += frame.payload.len(),
                    }
                }
                black_box(checksum)
            });
        });
    }
    group.finish();
}

fn encode_deliver(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_deliver");
    let properties = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .to_raw();
    for body_size in [16usize, 1024] {
        let body = Bytes::from(vec![7u8; body_size]);
        let mut out = Vec::with_capacity(4096);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{body_size}B"), |b| {
            b.iter(|| {
                out.clear();
                write_method_frame(
                    &mut out,
                    1,
                    &Method::BasicDeliver(BasicDeliver {
                        consumer_tag: ShortStr::from_static("amq.ctag-bench"),
                        delivery_tag: 42,
                        redelivered: false,
                        exchange: ShortStr::from_static("amq.direct"),
                        routing_key: ShortStr::from_static("bench.key"),
                    }),
                );
                write_content(&mut out, 1, 60, &properties, &body, 131_072);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = decode_publish, encode_deliver
}
criterion_main!(benches);
