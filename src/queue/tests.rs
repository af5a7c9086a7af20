//! Dispatch, prefetch, settle and requeue rules of one queue.

use super::*;
use crate::ids::ChannelId;
use bytes::Bytes;
use std::sync::Arc;

pub(super) fn message(body: &'static str) -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::default(),
        routing_key: ShortStr::from_static("q"),
        persistent: false,
        ttl: None,
        priority: 0,
        properties_raw: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(body.as_bytes()),
    })
}

/// The message basic.get returned; panics on an empty or on-disk head.
pub(super) fn got(outcome: GetOutcome) -> (MessageId, bool, Arc<Message>) {
    match outcome {
        GetOutcome::Got {
            id,
            redelivered,
            message,
        } => (id, redelivered, message),
        other => panic!("expected a message, got {other:?}"),
    }
}

pub(super) fn consumer(
    channel: u16,
    tag: &'static str,
    prefetch_count: u16,
    no_ack: bool,
) -> Consumer {
    Consumer {
        key: ConsumerKey {
            connection: ConnectionId::new(crate::ids::ShardId(0), 1),
            channel: ChannelId(channel),
            tag: ShortStr::from_static(tag),
        },
        no_ack,
        exclusive: false,
        prefetch_count,
        unacked_count: 0,
        priority: 0,
        flow_credit: consumer::FLOW_CREDIT_INITIAL,
        arguments: Default::default(),
    }
}

fn queue_with(count: usize) -> Queue {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, false);
    for _ in 0..count {
        queue.enqueue(message("m"));
    }
    queue
}

#[test]
fn round_robin_among_consumers_with_room() {
    let mut queue = queue_with(4);
    queue
        .add_consumer(consumer(1, "a", 0, false))
        .expect("first consumer");
    queue
        .add_consumer(consumer(1, "b", 0, false))
        .expect("second consumer");
    let mut limits = ChannelLimits::default();
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    let tags: Vec<String> = out.iter().map(|d| d.consumer.tag.to_string()).collect();
    assert_eq!(tags, ["a", "b", "a", "b"]);
    queue.check_invariants();
}

#[test]
fn per_consumer_prefetch_stops_dispatch_until_ack() {
    let mut queue = queue_with(5);
    queue
        .add_consumer(consumer(1, "a", 2, false))
        .expect("consumer");
    let mut limits = ChannelLimits::default();
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(out.len(), 2);
    assert_eq!(queue.ready_count(), 3);
    let channel = out[0].consumer.channel_key();
    let first = out[0].id;
    assert_eq!(
        queue
            .settle(channel, &[first], SettleAction::Ack, &mut Vec::new())
            .total,
        1
    );
    out.clear();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(out.len(), 1, "one slot freed by the ack");
    queue.check_invariants();
}

#[test]
fn channel_wide_prefetch_is_shared_by_the_channel_consumers() {
    let mut queue = queue_with(10);
    queue
        .add_consumer(consumer(1, "a", 0, false))
        .expect("consumer a");
    queue
        .add_consumer(consumer(1, "b", 0, false))
        .expect("consumer b");
    let mut limits = ChannelLimits::default();
    let channel = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    limits.entry(channel).prefetch_count = 3;
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(out.len(), 3);
}

#[test]
fn no_ack_consumers_ignore_prefetch_but_not_flow_credit() {
    let mut queue = queue_with(5);
    let mut fast = consumer(1, "a", 1, true);
    fast.flow_credit = 4;
    queue.add_consumer(fast).expect("consumer");
    let mut limits = ChannelLimits::default();
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(out.len(), 4, "limited by flow credit only");
    assert_eq!(queue.unacked_count(), 0);
    let key = out[0].consumer.clone();
    queue.return_credit(&key, 4);
    out.clear();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(out.len(), 1);
}

#[test]
fn requeue_restores_original_position_and_marks_redelivered() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, false);
    for body in ["one", "two", "three"] {
        queue.enqueue(message(body));
    }
    queue
        .add_consumer(consumer(1, "a", 1, false))
        .expect("consumer");
    let mut limits = ChannelLimits::default();
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    let delivered = out.pop().expect("one delivery");
    assert_eq!(delivered.message.body.as_ref(), b"one");
    queue.settle(
        delivered.consumer.channel_key(),
        &[delivered.id],
        SettleAction::Requeue,
        &mut Vec::new(),
    );
    let (_, redelivered, head) =
        got(queue.get(delivered.consumer.channel_key(), true, &mut Vec::new()));
    assert_eq!(head.body.as_ref(), b"one");
    assert!(redelivered);
    queue.check_invariants();
}

#[test]
fn closing_a_channel_requeues_its_unacked_messages() {
    let mut queue = queue_with(3);
    queue
        .add_consumer(consumer(1, "a", 0, false))
        .expect("consumer");
    let mut limits = ChannelLimits::default();
    let mut out = Vec::new();
    queue.dispatch(&mut limits, 100, &mut out, &mut Vec::new());
    assert_eq!(queue.ready_count(), 0);
    let channel = out[0].consumer.channel_key();
    queue.remove_consumers_of(channel.connection, Some(channel.channel));
    assert_eq!(queue.requeue_channel(channel).consumer_deliveries, 3);
    assert_eq!(queue.ready_count(), 3);
    assert_eq!(queue.unacked_count(), 0);
    queue.check_invariants();
}

#[test]
fn exclusive_consumer_rules() {
    let mut queue = queue_with(0);
    queue
        .add_consumer(consumer(1, "a", 0, false))
        .expect("consumer");
    let mut exclusive = consumer(2, "x", 0, false);
    exclusive.exclusive = true;
    assert_eq!(
        queue.add_consumer(exclusive.clone()),
        Err(ConsumeRefusal::ExclusiveInUse)
    );
    let mut empty = queue_with(0);
    empty
        .add_consumer(exclusive)
        .expect("exclusive on an idle queue");
    assert_eq!(
        empty.add_consumer(consumer(3, "b", 0, false)),
        Err(ConsumeRefusal::ExclusiveInUse)
    );
}

#[test]
fn auto_delete_only_after_a_consumer_came_and_went() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), true, false);
    assert!(!queue.should_auto_delete());
    let first = consumer(1, "a", 0, false);
    let key = first.key.clone();
    queue.add_consumer(first).expect("consumer");
    assert!(!queue.should_auto_delete());
    queue.remove_consumer(&key);
    assert!(queue.should_auto_delete());
}

#[test]
fn purge_drops_ready_but_keeps_unacked() {
    let mut queue = queue_with(4);
    let channel = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    let (id, _, _) = got(queue.get(channel, false, &mut Vec::new()));
    assert_eq!(queue.purge(&mut Vec::new()), 3);
    assert_eq!(queue.unacked_count(), 1);
    let outcome = queue.settle(channel, &[id], SettleAction::Ack, &mut Vec::new());
    assert_eq!(outcome.total, 1);
    assert_eq!(
        outcome.consumer_deliveries, 0,
        "basic.get counts against no prefetch"
    );
}

#[test]
fn a_channel_cannot_settle_another_channels_delivery() {
    let mut queue = queue_with(1);
    let owner = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    let other = ChannelKey {
        channel: ChannelId(2),
        ..owner
    };
    let (id, _, _) = got(queue.get(owner, false, &mut Vec::new()));
    assert_eq!(
        queue
            .settle(other, &[id], SettleAction::Ack, &mut Vec::new())
            .total,
        0
    );
    assert_eq!(queue.unacked_count(), 1);
    assert_eq!(
        queue
            .settle(owner, &[id], SettleAction::Ack, &mut Vec::new())
            .total,
        1
    );
}

#[test]
fn a_deduplicating_queue_frees_a_value_when_its_message_leaves() {
    let settings = settings::QueueSettings {
        message_deduplication: true,
        ..Default::default()
    };
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, false)
        .with_settings(ShortStr::from_static("/"), settings);
    let value = Bytes::from_static(b"order-1");
    let channel = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    assert!(queue.admits_dedup_value(&value));
    let id = queue.enqueue(message("a"));
    queue.remember_dedup_value(id, value.clone());
    assert!(!queue.admits_dedup_value(&value), "ready");

    let mut gone = Vec::new();
    let (got_id, _, _) = got(queue.get(channel, false, &mut gone));
    assert!(!queue.admits_dedup_value(&value), "unacked");
    queue.settle(channel, &[got_id], SettleAction::Requeue, &mut gone);
    assert!(!queue.admits_dedup_value(&value), "requeued");
    let (got_id, _, _) = got(queue.get(channel, false, &mut gone));
    queue.settle(channel, &[got_id], SettleAction::Ack, &mut gone);
    assert!(queue.admits_dedup_value(&value), "acked");

    let id = queue.enqueue(message("b"));
    queue.remember_dedup_value(id, value.clone());
    queue.purge(&mut gone);
    assert!(queue.admits_dedup_value(&value), "purged");

    let id = queue.enqueue(message("c"));
    queue.remember_dedup_value(id, value.clone());
    got(queue.get(channel, true, &mut gone));
    assert!(queue.admits_dedup_value(&value), "taken without ack");
    queue.check_invariants();
}

#[test]
fn lowering_max_length_on_a_live_queue_drops_from_the_head_at_once() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, false).with_settings(
        ShortStr::from_static("/"),
        settings::QueueSettings::default(),
    );
    for body in ["a", "b", "c", "d"] {
        queue.enqueue(message(body));
    }
    let limited = settings::QueueSettings {
        max_length: Some(2),
        ..Default::default()
    };
    assert!(queue.apply_settings(limited.clone(), expiry::now_ms()));
    assert!(
        !queue.apply_settings(limited, expiry::now_ms()),
        "unchanged"
    );
    assert_eq!(queue.ready_count(), 2);
    assert!(queue.has_special_settings());
    let channel = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    let (_, _, head) = got(queue.get(channel, true, &mut Vec::new()));
    assert_eq!(&head.body[..], b"c");
    // Cleared: nothing comes back, and the limit no longer holds.
    assert!(queue.apply_settings(settings::QueueSettings::default(), expiry::now_ms()));
    for body in ["e", "f", "g"] {
        queue.enqueue(message(body));
    }
    assert_eq!(queue.ready_count(), 4);
    queue.check_invariants();
}

#[test]
fn a_ttl_set_on_a_live_queue_leaves_earlier_messages_without_a_deadline() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, false).with_settings(
        ShortStr::from_static("/"),
        settings::QueueSettings::default(),
    );
    queue.enqueue(message("old"));
    let ttl = settings::QueueSettings {
        message_ttl: Some(1000),
        ..Default::default()
    };
    assert!(queue.apply_settings(ttl, expiry::now_ms()));
    queue.enqueue(message("new"));
    queue.expire(expiry::now_ms() + 5000);
    assert_eq!(queue.ready_count(), 1, "only the new message expired");
    let channel = ChannelKey {
        connection: ConnectionId::new(crate::ids::ShardId(0), 1),
        channel: ChannelId(1),
    };
    let (_, _, head) = got(queue.get(channel, true, &mut Vec::new()));
    assert_eq!(&head.body[..], b"old");
    queue.check_invariants();
}
