//! Which stored bodies stay in RAM, and how fetched bodies come back in queue order.

use super::tests::{consumer, got, message};
use super::*;
use hare_storage::SegmentId;
use residency::{FETCH_BATCH_MESSAGES_MAX, RESIDENT_MESSAGES_MAX};

fn stored_at(index: u64) -> StoredAt {
    StoredAt::new(RecordLocation {
        segment: SegmentId(1),
        offset: 4096 + 64 * u32::try_from(index).expect("small index"),
        length: 40,
    })
}

/// Recovered entries with these ids: bodies on disk, redelivered, as replay makes them.
fn recovered<const N: usize>(ids: [u64; N]) -> Vec<QueuedMessage> {
    ids.into_iter()
        .map(|id| QueuedMessage {
            id: MessageId(id),
            message: None,
            stored: Some(stored_at(id)),
            redelivered: true,
            priority: 0,
            record_overhead: 0,
        })
        .collect()
}

/// A durable queue holding `count` stored messages, enqueued as the publish path does.
fn stored_queue(count: u64) -> Queue {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, true);
    for index in 0..count {
        let id = queue.reserve_id();
        queue.enqueue_stored(id, message("m"), stored_at(index), 0);
    }
    queue
}

/// Reads a plan back the way the fetcher does, with fresh messages.
fn fetch_all(queue: &mut Queue, plan: FetchPlan) {
    queue.fetched(plan.ids.into_iter().map(|id| (id, message("m"))));
}

/// Dispatches everything resident, returning flow credit as a connection would.
fn deliver_all(queue: &mut Queue) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let mut out = Vec::new();
        queue.dispatch(
            &mut ChannelLimits::default(),
            usize::MAX,
            &mut out,
            &mut Vec::new(),
        );
        if out.is_empty() {
            return all;
        }
        for delivery in &out {
            queue.return_credit(&delivery.consumer, 1);
        }
        all.append(&mut out);
    }
}

#[test]
fn a_backlog_keeps_only_its_head_in_ram() {
    let total = RESIDENT_MESSAGES_MAX as u64 + 5000;
    let queue = stored_queue(total);
    assert_eq!(queue.ready_count(), total as usize);
    assert_eq!(queue.resident_count(), RESIDENT_MESSAGES_MAX);
    queue.check_invariants();
}

#[test]
fn transient_messages_stay_in_ram_until_their_bytes_fill_the_head_then_are_paged() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, true);
    // Small bodies: far more than the stored count limit stay resident.
    for _ in 0..RESIDENT_MESSAGES_MAX + 10 {
        assert!(queue.keeps_next_transient());
        queue.enqueue(message("t"));
    }
    assert_eq!(queue.resident_count(), queue.ready_count());
    while queue.keeps_next_transient() {
        queue.enqueue(message("t"));
    }
    let resident = queue.resident_count();
    assert!(
        resident > 30_000 && resident < 60_000,
        "{resident} one-byte messages fill the head"
    );
    // Behind the head a paged message keeps no body, and leaving logs no settled record.
    let id = queue.reserve_id();
    let paged = StoredAt::paged(stored_at(0).location());
    assert!(paged.is_paged() && !stored_at(0).is_paged());
    assert_eq!(paged.location(), stored_at(0).location());
    queue.enqueue_stored(id, message("p"), paged, 0);
    assert_eq!(queue.resident_count(), resident);
    assert!(
        !queue.keeps_next_transient(),
        "a paged message is not resident"
    );
    let mut gone = Vec::new();
    queue.purge(&mut gone);
    assert_eq!(gone.len(), 1);
    assert!(gone[0].paged && gone[0].id == id);
    queue.check_invariants();
}

#[test]
fn dispatch_stops_at_a_body_on_disk_and_fetches_continue_in_order() {
    let total = RESIDENT_MESSAGES_MAX as u64 + 2500;
    let mut queue = stored_queue(total);
    assert_eq!(
        queue.fetch_plan(false),
        None,
        "no consumer, no fetch: bodies stay on disk"
    );
    queue
        .add_consumer(consumer(1, "a", 0, true))
        .expect("consumer");
    let mut delivered: Vec<u64> = deliver_all(&mut queue).iter().map(|d| d.id.0).collect();
    assert_eq!(delivered.len(), RESIDENT_MESSAGES_MAX);
    while let Some(plan) = queue.fetch_plan(false) {
        assert!(plan.ids.len() <= FETCH_BATCH_MESSAGES_MAX);
        assert_eq!(queue.fetch_plan(false), None, "one plan at a time");
        fetch_all(&mut queue, plan);
        delivered.extend(deliver_all(&mut queue).iter().map(|d| d.id.0));
        queue.check_invariants();
    }
    assert_eq!(delivered, (1..=total).collect::<Vec<_>>());
    assert_eq!(queue.ready_count(), 0);
}

#[test]
fn read_ahead_starts_before_the_resident_head_runs_out() {
    let mut queue = stored_queue(RESIDENT_MESSAGES_MAX as u64 + 100);
    queue
        .add_consumer(consumer(1, "a", 0, true))
        .expect("consumer");
    assert_eq!(
        queue.fetch_plan(false),
        None,
        "a full resident head needs nothing"
    );
    let mut out = Vec::new();
    let take = RESIDENT_MESSAGES_MAX - residency::FETCH_LOW_WATER_MESSAGES + 1;
    queue.dispatch(
        &mut ChannelLimits::default(),
        take,
        &mut out,
        &mut Vec::new(),
    );
    let plan = queue.fetch_plan(false).expect("below the low water mark");
    assert_eq!(
        plan.ids.first().map(|id| id.0),
        Some(RESIDENT_MESSAGES_MAX as u64 + 1)
    );
    assert_eq!(plan.ids.len(), 100);
}

#[test]
fn unacked_stored_messages_drop_their_body_and_come_back_from_disk_in_place() {
    let mut queue = stored_queue(3);
    queue
        .add_consumer(consumer(1, "a", 0, false))
        .expect("consumer");
    let out = deliver_all(&mut queue);
    assert_eq!(out.len(), 3);
    let channel = out[0].consumer.channel_key();
    queue.settle(
        channel,
        &[out[1].id],
        SettleAction::Requeue,
        &mut Vec::new(),
    );
    assert_eq!((queue.ready_count(), queue.resident_count()), (1, 0));
    let mut limits = ChannelLimits::default();
    let mut none = Vec::new();
    queue.dispatch(&mut limits, 10, &mut none, &mut Vec::new());
    assert!(none.is_empty(), "the requeued body is on disk");
    let plan = queue
        .fetch_plan(false)
        .expect("a plan for the requeued message");
    assert_eq!(plan.ids, vec![out[1].id]);
    fetch_all(&mut queue, plan);
    let again = deliver_all(&mut queue);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, out[1].id);
    assert!(again[0].redelivered);
    queue.check_invariants();
}

#[test]
fn get_asks_for_a_fetch_when_the_head_is_on_disk() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, true);
    queue.restore(recovered([1, 2, 3]), &[]);
    let channel = consumer(1, "a", 0, false).key.channel_key();
    assert!(matches!(
        queue.get(channel, false, &mut Vec::new()),
        GetOutcome::NeedsFetch
    ));
    assert_eq!(queue.fetch_plan(false), None, "basic.get must force it");
    let plan = queue.fetch_plan(true).expect("forced plan");
    assert_eq!(plan.ids.len(), 3);
    fetch_all(&mut queue, plan);
    let (id, redelivered, _) = got(queue.get(channel, false, &mut Vec::new()));
    assert_eq!((id, redelivered), (MessageId(1), true));
    assert_eq!(
        queue.reserve_id(),
        MessageId(4),
        "ids continue after recovered ones"
    );
}

#[test]
fn fetched_bodies_of_messages_that_left_meanwhile_are_ignored() {
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, true);
    queue.restore(recovered([3, 1, 2]), &[]);
    let plan = queue.fetch_plan(true).expect("plan");
    assert_eq!(
        plan.ids,
        vec![MessageId(1), MessageId(2), MessageId(3)],
        "restore sorts"
    );
    assert_eq!(queue.purge(&mut Vec::new()), 3);
    fetch_all(&mut queue, plan);
    assert_eq!(queue.resident_count(), 0);
    queue.check_invariants();
}

#[test]
fn no_ack_deliveries_of_stored_messages_are_settled_for_good() {
    let mut queue = stored_queue(3);
    queue.enqueue(message("transient"));
    let channel = consumer(1, "a", 0, true).key.channel_key();
    let mut gone = Vec::new();
    let (id, _, _) = got(queue.get(channel, true, &mut gone));
    assert_eq!(gone.iter().map(|g| g.id).collect::<Vec<_>>(), vec![id]);
    queue
        .add_consumer(consumer(1, "a", 0, true))
        .expect("consumer");
    let mut out = Vec::new();
    queue.dispatch(&mut ChannelLimits::default(), 10, &mut out, &mut gone);
    assert_eq!(out.len(), 3);
    assert_eq!(
        gone.iter().map(|g| g.id.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "the transient message leaves no record"
    );
    assert_eq!(queue.unacked_count(), 0);
}

/// Bodies of stored messages a queue will dead-letter are read back shortly before their
/// deadline, each once, and only when expiring needs them.
#[test]
fn bodies_due_soon_are_read_ahead_once() {
    let now = 1_000_000;
    let deadlines = [
        (MessageId(1), now + READ_AHEAD_MS + 500),
        (MessageId(2), now + 10),
        (MessageId(3), now + READ_AHEAD_MS - 1),
    ];
    let settings = settings::QueueSettings {
        dead_letter_exchange: Some(ShortStr::from_static("dlx")),
        ..Default::default()
    };
    let mut queue = Queue::new(QueueId(1), ShortStr::from_static("q"), false, true)
        .with_settings(ShortStr::from_static("/"), settings);
    queue.restore(recovered([1, 2, 3]), &deadlines);
    let plan = queue.read_ahead_plan(now).expect("two are due soon");
    assert_eq!(plan.ids, vec![MessageId(2), MessageId(3)]);
    assert_eq!(queue.read_ahead_plan(now + 1), None, "each deadline once");
    assert_eq!(
        queue.next_timer(),
        Some(now + 10),
        "the next deadline comes before the next read-ahead"
    );
    fetch_all(&mut queue, plan);
    assert_eq!(queue.resident_count(), 2);
    let later = queue
        .read_ahead_plan(now + 500)
        .expect("the last one is due soon");
    assert_eq!(later.ids, vec![MessageId(1)]);

    // Without a dead-letter exchange, expiring reads nothing.
    let mut plain = Queue::new(QueueId(2), ShortStr::from_static("p"), false, true);
    plain.restore(recovered([1, 2, 3]), &deadlines);
    assert_eq!(plain.read_ahead_plan(now), None);
}
