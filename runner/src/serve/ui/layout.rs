//! The page shell every UI page shares: head, the one stylesheet and script, the header with
//! who is signed in, and the notice a refused action leaves.

use maud::{DOCTYPE, Markup, html};

/// Who looks at a page and what they may do: decides which forms are drawn.
#[derive(Debug, Clone)]
pub struct PageCtx {
    /// The token's name (the actor every action records).
    pub user: String,
    /// Operators act; viewers only read (no action buttons at all).
    pub can_act: bool,
    /// The CSRF token every form carries.
    pub csrf: String,
}

/// A message shown above the page: an action refused (409) or accepted.
#[derive(Debug, Clone)]
pub struct Notice {
    pub is_error: bool,
    pub text: String,
}

/// The whole page around `content`.
pub fn page(title: &str, ctx: &PageCtx, notice: Option<&Notice>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · relflow" }
                link rel="stylesheet" href=(super::assets::STYLE_PATH);
                script src=(super::assets::SCRIPT_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "relflow" }
                    span.who {
                        (ctx.user) " · " (if ctx.can_act { "operator" } else { "viewer" })
                    }
                }
                main {
                    @if let Some(notice) = notice {
                        p.notice.error[notice.is_error] role="alert" id="notice" { (notice.text) }
                    }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field of every form.
pub fn csrf_field(ctx: &PageCtx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// A status as a coloured badge (`failed`, `rolled_back`, ...).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status.replace('_', " ")) } }
}
