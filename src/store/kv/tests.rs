//! Unit tests of the in-process store through [`Kv`]; the integration tests run a real Redis.

use super::*;

#[tokio::test]
async fn memory_store_expires_and_sets_once() {
    let kv = Kv::memory();
    assert!(
        kv.set_nx_ex("a", "1", Duration::from_millis(30))
            .await
            .unwrap()
    );
    assert!(
        !kv.set_nx_ex("a", "1", Duration::from_millis(30))
            .await
            .unwrap()
    );
    kv.set("b", "x", Some(Duration::from_millis(30)))
        .await
        .unwrap();
    assert_eq!(kv.get("b").await.unwrap().as_deref(), Some("x"));
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(kv.get("b").await.unwrap(), None);
    assert!(
        kv.set_nx_ex("a", "1", Duration::from_millis(30))
            .await
            .unwrap()
    );
    kv.set("lock", "mine", Some(Duration::from_millis(30)))
        .await
        .unwrap();
    kv.expire_if("lock", "theirs", Duration::from_secs(60))
        .await;
    kv.del_if("lock", "theirs").await;
    assert_eq!(kv.get("lock").await.unwrap().as_deref(), Some("mine"));
    kv.expire_if("lock", "mine", Duration::from_secs(60)).await;
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(
        kv.get("lock").await.unwrap().as_deref(),
        Some("mine"),
        "extended"
    );
    kv.del_if("lock", "mine").await;
    assert_eq!(kv.get("lock").await.unwrap(), None);
    kv.set("c", "y", None).await.unwrap();
    kv.del("c").await.unwrap();
    assert_eq!(kv.get("c").await.unwrap(), None);
}
