//! Seeded random frames after a valid handshake: the broker answers with a hard-error close or drops the socket, never crashes, and keeps serving other clients.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::raw::{method_frame, raw_frame, Incoming, RawClient, REPLY_TIMEOUT};
use common::Broker;
use hare::protocol::{
    BasicAck, BasicConsume, BasicGet, BasicNack, BasicPublish, BasicQos, ChannelClose, ChannelFlow,
    ChannelOpen, ConnectionOpen, ConnectionTuneOk, ExchangeDeclare, FrameType, Method, QueueBind,
    QueueDeclare, QueueDelete, ShortStr,
};

/// Connections per run; each gets 1..=4 random frames and then a frame with a bad end octet.
const ROUNDS: u64 = 300;
/// Codes a connection.close may carry in answer to garbage.
const ALLOWED_CODES: [u16; 7] = [501, 502, 503, 504, 505, 530, 540];

/// xorshift64*: small, seeded, reproducible.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    match std::env::var("HARE_FUZZ_SEED") {
        Ok(seed) => seed.parse().expect("HARE_FUZZ_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

/// Well-formed methods a client might send, several of them wrong in context.
fn sample_methods() -> Vec<Method> {
    let name = ShortStr::from_static;
    vec![
        Method::ChannelOpen(ChannelOpen::default()),
        Method::ChannelClose(ChannelClose::default()),
        Method::ChannelCloseOk(Default::default()),
        Method::ChannelFlow(ChannelFlow { active: false }),
        Method::ChannelFlow(ChannelFlow { active: true }),
        Method::ConnectionOpen(ConnectionOpen::default()),
        Method::ConnectionTuneOk(ConnectionTuneOk::default()),
        Method::ConnectionStartOk(Default::default()),
        Method::ConnectionUpdateSecret(Default::default()),
        Method::ConnectionBlocked(Default::default()),
        Method::AccessRequest(Default::default()),
        Method::ExchangeDeclare(ExchangeDeclare {
            exchange: name("fx"),
            kind: name("nonsense"),
            ..Default::default()
        }),
        Method::ExchangeDelete(Default::default()),
        Method::QueueDeclare(QueueDeclare::default()),
        Method::QueueDeclare(QueueDeclare {
            queue: name("fq"),
            ..Default::default()
        }),
        Method::QueueBind(QueueBind {
            queue: name("fq"),
            exchange: name("amq.fanout"),
            ..Default::default()
        }),
        Method::QueuePurge(Default::default()),
        Method::QueueDelete(QueueDelete::default()),
        Method::BasicQos(BasicQos {
            prefetch_size: 1,
            ..Default::default()
        }),
        Method::BasicConsume(BasicConsume {
            queue: name("fq"),
            consumer_tag: name("c"),
            ..Default::default()
        }),
        Method::BasicCancel(Default::default()),
        Method::BasicPublish(BasicPublish::default()),
        Method::BasicPublish(BasicPublish {
            routing_key: name("fq"),
            immediate: true,
            ..Default::default()
        }),
        Method::BasicGet(BasicGet {
            queue: name("fq"),
            ..Default::default()
        }),
        Method::BasicAck(BasicAck {
            delivery_tag: 1,
            multiple: false,
        }),
        Method::BasicNack(BasicNack::default()),
        Method::BasicReject(Default::default()),
        Method::BasicRecover(Default::default()),
        Method::BasicRecoverAsync(Default::default()),
        Method::BasicDeliver(Default::default()),
        Method::BasicGetOk(Default::default()),
        Method::BasicReturn(Default::default()),
        Method::TxSelect(Default::default()),
        Method::TxCommit(Default::default()),
        Method::TxRollback(Default::default()),
        Method::ConfirmSelect(Default::default()),
    ]
}

fn random_channel(rng: &mut XorShift) -> u16 {
    match rng.below(8) {
        0 | 1 => 0,
        2..=5 => 1,
        6 => 2,
        _ => rng.next() as u16,
    }
}

/// A method payload: a valid sample, a mutated or truncated one, or random ids and bytes.
fn method_payload(rng: &mut XorShift, samples: &[Method]) -> Vec<u8> {
    let mut payload = Vec::new();
    samples[rng.below(samples.len() as u64) as usize].encode(&mut payload);
    match rng.below(6) {
        0..=2 => {}
        3 => {
            let at = rng.below(payload.len() as u64) as usize;
            payload[at] = rng.next() as u8;
        }
        4 => payload.truncate(rng.below(payload.len() as u64) as usize),
        _ => {
            payload = (rng.next() as u32).to_be_bytes().to_vec();
            payload.extend(rng.bytes(24));
        }
    }
    payload
}

/// One frame: mostly well-enveloped method, header, body and heartbeat frames; sometimes a
/// broken envelope (unknown type, bad end octet, size over frame_max).
fn random_frame(rng: &mut XorShift, samples: &[Method]) -> Vec<u8> {
    let channel = random_channel(rng);
    match rng.below(12) {
        0..=4 => raw_frame(1, channel, &method_payload(rng, samples)),
        5 | 6 => {
            let class_id: u16 = if rng.below(8) == 0 { 50 } else { 60 };
            let body_size = match rng.below(4) {
                0 => 0,
                1 | 2 => rng.below(16),
                _ => rng.next(),
            };
            let mut payload = class_id.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0, 0]);
            payload.extend_from_slice(&body_size.to_be_bytes());
            if rng.below(3) == 0 {
                payload.extend(rng.bytes(12));
            } else {
                payload.extend_from_slice(&[0, 0]);
            }
            raw_frame(2, channel, &payload)
        }
        7 | 8 => raw_frame(3, channel, &rng.bytes(16)),
        9 => raw_frame(8, channel, &rng.bytes(1)),
        10 => {
            let frame_type = [0u8, 4, 5, 9, 255][rng.below(5) as usize];
            raw_frame(frame_type, channel, &rng.bytes(8))
        }
        _ => {
            let mut frame = raw_frame(1, channel, &method_payload(rng, samples));
            *frame.last_mut().expect("end octet") = rng.next() as u8 | 1;
            frame
        }
    }
}

/// Reads until the broker closes: the connection.close must carry an allowed code.
fn expect_hard_close(victim: &mut RawClient, context: &str) {
    loop {
        match victim.read_frame(REPLY_TIMEOUT) {
            Incoming::Closed => return,
            Incoming::Timeout => panic!("{context}: no close within {REPLY_TIMEOUT:?}"),
            Incoming::Frame(frame) if frame.channel != 0 => {}
            Incoming::Frame(frame) if frame.frame_type == FrameType::Heartbeat => {}
            Incoming::Frame(frame) => {
                let method = Method::decode(&frame.payload)
                    .unwrap_or_else(|error| panic!("{context}: undecodable reply: {error}"));
                match method {
                    Method::ConnectionClose(close) => {
                        assert!(
                            ALLOWED_CODES.contains(&close.reply_code),
                            "{context}: unexpected close {close:?}"
                        );
                        victim.send_bytes_lossy(&method_frame(
                            0,
                            &Method::ConnectionCloseOk(Default::default()),
                        ));
                        victim.expect_socket_closed(REPLY_TIMEOUT);
                        return;
                    }
                    // The garbage held a valid connection.close of the client's own.
                    Method::ConnectionCloseOk(_) => {
                        victim.expect_socket_closed(REPLY_TIMEOUT);
                        return;
                    }
                    Method::ConnectionUpdateSecretOk(_) => {}
                    other => panic!("{context}: unexpected reply on channel 0: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn random_frames_get_a_hard_error_or_a_closed_socket() {
    random_rounds(ROUNDS);
}

/// Regression: after several hundred short connections a shard's executor used to park in
/// io_uring with runnable tasks and stop serving (glommio's 1 ms preempt timer; see
/// `shard::startup::PREEMPT_TIMER`).
#[test]
fn random_frames_stress() {
    random_rounds(5000);
}

fn random_rounds(rounds: u64) {
    let seed = seed();
    eprintln!("random_frames seed {seed} (rerun with HARE_FUZZ_SEED={seed})");
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let samples = sample_methods();
    let mut rng = XorShift::new(seed);
    for round in 0..rounds {
        let mut victim = RawClient::witness(broker.addr);
        let mut bytes = Vec::new();
        for _ in 0..=rng.below(4) {
            bytes.extend(random_frame(&mut rng, &samples));
        }
        // Every round ends in a framing error, so every connection gets closed.
        let mut last = raw_frame(8, 0, b"");
        *last.last_mut().expect("end octet") = 0;
        bytes.extend(last);
        victim.send_bytes_lossy(&bytes);
        expect_hard_close(&mut victim, &format!("seed {seed} round {round}"));
    }
    witness.assert_serving();
    RawClient::witness(broker.addr).assert_serving();
}

#[test]
fn a_long_random_byte_stream_after_the_handshake_is_survived() {
    let seed = seed();
    eprintln!("random byte stream seed {seed} (rerun with HARE_FUZZ_SEED={seed})");
    let broker = Broker::start(1);
    let mut witness = RawClient::witness(broker.addr);
    let mut rng = XorShift::new(seed);
    for round in 0..50 {
        let mut victim = RawClient::witness(broker.addr);
        // Starts with a plausible frame header so the size is bounded, then pure noise.
        let mut bytes = vec![1, 0, 1, 0, 0, 0, rng.below(64) as u8];
        bytes.extend(rng.bytes(4096));
        bytes.resize(bytes.len() + 140_000, 0xCE);
        victim.send_bytes_lossy(&bytes);
        expect_hard_close(&mut victim, &format!("seed {seed} stream {round}"));
    }
    witness.assert_serving();
}
