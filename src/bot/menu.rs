//! The command menu Telegram shows: one per language, and one with `/stats` in each admin's chat.

use crate::config::{BotLanguage, Config};
use crate::store::state::StateStore;
use crate::telegram::{Bot, BotCommand, BotCommandScope};
use crate::texts::{Lang, t};

/// The commands Telegram shows in the menu, in `lang`; `/stats` too when `admin`.
pub fn menu(lang: Lang, admin: bool) -> Vec<BotCommand> {
    let everyone = [
        "start",
        "help",
        "reset",
        "history",
        "export",
        "usage",
        "subscribe",
    ];
    let admins: &[&str] = if admin { &["stats"] } else { &[] };
    everyone
        .iter()
        .chain(admins)
        .map(|command| BotCommand {
            command: command.to_string(),
            description: t(lang, &format!("menu.{command}"), &[]),
        })
        .collect()
}

/// Registers the menus (`setMyCommands`): for everyone and for each admin's chat, once without a
/// `language_code` (the default language) and once per other language with its code. A forced
/// `BOT_LANGUAGE` puts that language in every one of them, so no menu of an earlier setting
/// lingers. The admins' chats are remembered in `state`, so the chat of someone no longer in
/// `ADMIN_USER_IDS` gets the everyday menu back (`deleteMyCommands`). A failure is logged; the
/// bot works without a menu.
pub async fn register_menus(telegram: &Bot, config: &Config, state: &StateStore) {
    let default = Lang::default_language();
    let codes: Vec<Option<&str>> = std::iter::once(None)
        .chain(
            Lang::all()
                .into_iter()
                .filter(|l| *l != default)
                .map(|l| Some(l.tag())),
        )
        .collect();
    let mut admins: Vec<i64> = config.bot.admin_user_ids.iter().copied().collect();
    admins.sort_unstable();
    forget_former_admins(telegram, config, state, &admins, &codes).await;
    let scopes = std::iter::once((BotCommandScope::Default, false)).chain(
        admins
            .into_iter()
            .map(|chat_id| (BotCommandScope::Chat { chat_id }, true)),
    );
    for (scope, admin) in scopes {
        for code in &codes {
            let lang = match config.bot.language {
                BotLanguage::Auto => code.and_then(Lang::by_tag).unwrap_or(default),
                forced => Lang::pick(forced, None),
            };
            if let Err(e) = telegram
                .set_my_commands(&menu(lang, admin), Some(&scope), *code)
                .await
            {
                tracing::warn!(error = %e, ?scope, language = code, "could not register the command menu");
            }
        }
    }
}

/// Takes `/stats` out of the menu of every chat that had it at the last start and is not an
/// admin's now, and remembers the admins' chats for the next start. A chat whose menu could not
/// be reset stays on the list, to be tried again.
async fn forget_former_admins(
    telegram: &Bot,
    config: &Config,
    state: &StateStore,
    admins: &[i64],
    codes: &[Option<&str>],
) {
    let key = format!("{}:menu_admins", config.kv_namespace());
    let before: Vec<i64> = match state.get(&key).await {
        Ok(list) => list
            .unwrap_or_default()
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read which chats had the admins' menu");
            return;
        }
    };
    let mut remembered = admins.to_vec();
    for chat_id in before.into_iter().filter(|id| !admins.contains(id)) {
        let scope = BotCommandScope::Chat { chat_id };
        for code in codes {
            match telegram.delete_my_commands(&scope, *code).await {
                Ok(()) => {}
                // No such chat (never opened), or the bot is blocked there: no menu to reset.
                Err(e) if matches!(e.code(), Some(400 | 403)) => {
                    tracing::info!(error = %e, chat_id, "a former admin's chat has no menu to reset");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, chat_id, language = code, "could not take /stats out of a former admin's menu; trying again at the next start");
                    remembered.push(chat_id);
                    break;
                }
            }
        }
    }
    let list: Vec<String> = remembered.iter().map(i64::to_string).collect();
    if let Err(e) = state.put(&key, Some(&list.join(",")), None).await {
        tracing::warn!(error = %e, "could not remember which chats have the admins' menu");
    }
}
