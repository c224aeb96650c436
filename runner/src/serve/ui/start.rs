//! Starting a release from the browser: pick a pipeline of `--pipelines DIR`, set its
//! variables (prefilled with the pipeline's defaults), start.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::layout::{self, Notice, PageCtx, csrf_field};

/// The start form's page (GET) and where it posts (POST).
pub const PATH: &str = "/start";

/// The form for `pipeline` with its variables and their default values.
pub fn page(
    pipeline: &str,
    variables: &BTreeMap<String, String>,
    ctx: &PageCtx,
    notice: Option<&Notice>,
) -> Markup {
    let content = html! {
        h1 { "Start a release of " (pipeline) }
        form.action.start method="post" action=(PATH) {
            (csrf_field(ctx))
            input type="hidden" name="pipeline" value=(pipeline);
            @for (k, v) in variables {
                label.var { code { (k) } " " input type="text" name=(format!("var.{k}")) value=(v); }
            }
            input type="text" name="comment" placeholder="comment (optional)" aria-label="comment";
            button type="submit" name="do" value="start" { "Start" }
        }
    };
    layout::page(&format!("Start {pipeline}"), ctx, notice, content)
}
