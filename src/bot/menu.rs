//! The command menu Telegram shows: one per language, and one with `/stats` in each admin's chat.

use crate::config::{BotLanguage, Config};
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
/// lingers. A failure is logged; the bot works without a menu.
pub async fn register_menus(telegram: &Bot, config: &Config) {
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
