//! Fuzzes update parsing the way `serve` (bytes) and `poll` (a JSON value) do it, and the
//! methods the service then calls on an update.

#![no_main]

use libfuzzer_sys::fuzz_target;
use subgpt::telegram::{ChatMember, Update};

fuzz_target!(|data: &[u8]| {
    let from_bytes = serde_json::from_slice::<Update>(data);
    // `poll` gets each update as a `serde_json::Value` first. What `serve` accepts, `poll` must
    // accept too (not the other way round: a `Value` quietly keeps the last of duplicate keys,
    // which the typed parse refuses).
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let from_value = serde_json::from_value::<Update>(value);
        assert!(
            from_bytes.is_err() || from_value.is_ok(),
            "poll refuses what serve takes"
        );
    }
    let Ok(update) = from_bytes else {
        return;
    };
    let user = update.user_id();
    if let Some(message) = update.private_message() {
        assert_eq!(user, message.from.as_ref().map(|u| u.id));
        if let Some((name, args)) = message.command() {
            assert!(!name.is_empty() && !name.contains('@'));
            assert_eq!(args, args.trim());
        }
        if let Some(from) = &message.from {
            assert!(!from.display_name().is_empty());
        }
    }
    for change in [&update.chat_member, &update.my_chat_member]
        .into_iter()
        .flatten()
    {
        check_member(&change.old_chat_member);
        check_member(&change.new_chat_member);
        assert!(!change.from.display_name().is_empty());
    }
    // What the service stores or logs of an update must read back as the same update.
    let json = serde_json::to_vec(&update).expect("an update serialises");
    let again: Update = serde_json::from_slice(&json).expect("a serialised update parses");
    assert_eq!(
        json,
        serde_json::to_vec(&again).expect("an update serialises")
    );
});

fn check_member(member: &ChatMember) {
    // An administrator is always subscribed; the gate relies on it.
    assert!(!member.is_admin() || member.is_subscribed());
    assert!(!member.user().display_name().is_empty());
}
