//! The dispatcher alone: a stub service, a real state database, no Telegram.

use super::*;
use crate::config::{Config, Purpose};
use crate::secret::Secret;
use crate::store::kv::Kv;
use crate::store::state::InboxRow;

fn update(update_id: i64, user: i64, text: &str) -> Update {
    serde_json::from_value(serde_json::json!({
        "update_id": update_id,
        "message": {"message_id": 1, "date": 0, "text": text,
            "from": {"id": user, "is_bot": false, "first_name": "A"},
            "chat": {"id": user, "type": "private"}}
    }))
    .unwrap()
}

/// A dispatcher in front of `service` without Redis, whose notices go nowhere.
fn dispatcher(service: UpdateService, tracker: TaskTracker, state: StateStore) -> Arc<Dispatcher> {
    dispatcher_with(service, tracker, state, Duration::from_secs(10))
}

fn dispatcher_with(
    service: UpdateService,
    tracker: TaskTracker,
    state: StateStore,
    deadline: Duration,
) -> Arc<Dispatcher> {
    Dispatcher::new(
        service,
        tracker,
        UserLocks::new(Kv::memory(), "t".into(), "test"),
        state,
        // Nothing listens there: a notice fails and is logged, which is all we need.
        Replier::new(
            crate::telegram::Bot::new("http://127.0.0.1:9", Secret::new("1:x"))
                .with_policy(crate::retry::Policy::new(Duration::ZERO, Duration::ZERO, 0)),
            &Config::from_vars(
                &[("TELEGRAM_BOT_TOKEN", "1:x"), ("OPENAI_API_KEY", "k")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                Purpose::Bot,
            )
            .unwrap()
            .telegram,
        ),
        Limits {
            queue: 10,
            deadline,
        },
        BotLanguage::Auto,
        CancellationToken::new(),
    )
}

/// Puts `update` in the inbox as the intake would.
async fn accept(state: &StateStore, update: &Update, user: i64) {
    let row = InboxRow {
        update_id: update.update_id,
        user_id: user,
        body: serde_json::to_vec(update).unwrap(),
        accepted_at: 0,
        attempts: 0,
        response_id: None,
    };
    assert!(state.accept(row).await.unwrap());
}

/// Waits until every task `tracker` tracks has ended (30 s at most).
async fn drained(tracker: TaskTracker) {
    tracker.close();
    tokio::time::timeout(Duration::from_secs(30), tracker.wait())
        .await
        .unwrap();
}

#[tokio::test]
async fn time_in_the_queue_counts_toward_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::store::state::open_in(dir.path());
    let started = Arc::new(Mutex::new(Vec::new()));
    let service = {
        let started = Arc::clone(&started);
        tower::service_fn(move |d: Delivery| {
            started.lock().push(d.update.update_id);
            // Never done: only the deadline ends it.
            std::future::pending::<Result<(), Infallible>>()
        })
    };
    let tracker = TaskTracker::new();
    let deadline = Duration::from_millis(200);
    let dispatcher = dispatcher_with(
        BoxCloneSyncService::new(service),
        tracker.clone(),
        state.clone(),
        deadline,
    );
    // The second update is accepted first, so by the time the first one is cut off at its
    // deadline the second one has surely waited longer than that.
    let (first, second) = (update(1, 5, "slow"), update(2, 5, "next"));
    for u in [&second, &first] {
        accept(&state, u, 5).await;
    }
    let second = Job::new(second, 5);
    let first = Job::new(first, 5);
    dispatcher.submit(first, false);
    dispatcher.submit(second, false);
    drained(tracker).await;
    assert_eq!(
        *started.lock(),
        vec![1],
        "the second one is not started late"
    );
    assert!(state.pending().await.unwrap().is_empty(), "both erased");
}

#[tokio::test]
async fn a_users_task_stays_small() {
    // Each user with an update in flight holds one such task, a thousand at once under
    // load. A Redis pool checkout inline in the lock's future, and updates carrying their
    // rare membership changes inline, once made it 14 KB.
    let dir = tempfile::tempdir().unwrap();
    let service = tower::service_fn(|_: Delivery| async { Ok::<(), Infallible>(()) });
    let dispatcher = dispatcher(
        BoxCloneSyncService::new(service),
        TaskTracker::new(),
        crate::store::state::open_in(dir.path()),
    );
    let task = Arc::clone(&dispatcher).serve(Lane {
        user: 5,
        membership: false,
    });
    let size = std::mem::size_of_val(&task);
    assert!(size <= 4096, "a user's task is {size} bytes");
}

#[tokio::test]
async fn a_panic_in_one_update_is_caught_and_the_next_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = crate::store::state::open_in(dir.path());
    let handled = Arc::new(Mutex::new(Vec::new()));
    let service = {
        let handled = Arc::clone(&handled);
        tower::service_fn(move |d: Delivery| {
            let handled = Arc::clone(&handled);
            async move {
                let text = d.update.message.as_ref().and_then(|m| m.text.clone());
                if text.as_deref() == Some("boom") {
                    panic!("a bug while handling the update");
                }
                handled.lock().push(d.update.update_id);
                Ok::<(), Infallible>(())
            }
        })
    };
    let tracker = TaskTracker::new();
    let dispatcher = dispatcher(
        BoxCloneSyncService::new(service),
        tracker.clone(),
        state.clone(),
    );
    for (id, text) in [(1, "first"), (2, "boom"), (3, "third")] {
        let update = update(id, 5, text);
        accept(&state, &update, 5).await;
        dispatcher.submit(Job::new(update, 5), false);
    }
    drained(tracker).await;
    assert_eq!(*handled.lock(), vec![1, 3]);
    assert!(state.pending().await.unwrap().is_empty(), "all erased");
}
