//! The release list (`/`): every release, newest first, kept live by polling its fragment;
//! for operators, the form that starts a release from the served pipelines folder.

use maud::{Markup, html};

use super::layout::{self, Notice, PageCtx, badge};
use super::release::page_path;
use crate::output::time::rfc3339_ms;
use crate::store::ReleaseRecord;

/// Where the page fetches its rows from.
pub const FRAGMENT_PATH: &str = "/fragments/releases";

/// The list page. `pipelines`: the names the start form offers (empty: no `--pipelines`).
pub fn page(
    releases: &[ReleaseRecord],
    pipelines: &[super::start::Choice],
    ctx: &PageCtx,
    notice: Option<&Notice>,
) -> Markup {
    let content = html! {
        h1 { "Releases" }
        @if ctx.can_act && !pipelines.is_empty() {
            // Links, not a form: choosing a pipeline changes nothing (the start form posts).
            p.start {
                "Start a release of: "
                @for p in pipelines {
                    a.start href=(format!("{}?pipeline={}", super::start::PATH, super::release::encode(&p.file)))
                        data-pipeline=(p.name) { (p.name) }
                    " "
                }
            }
        }
        table.releases #releases data-poll=(FRAGMENT_PATH) {
            thead { tr { th { "release" } th { "status" } th { "pipeline" } th { "started" } th { "variables" } } }
            tbody #release-rows { (rows(releases)) }
        }
    };
    layout::page("Releases", ctx, notice, content)
}

/// The table rows alone: the fragment the list page polls.
pub fn rows(releases: &[ReleaseRecord]) -> Markup {
    html! {
        @if releases.is_empty() {
            tr { td colspan="5" { "No releases yet." } }
        }
        @for r in releases {
            tr data-release=(r.id) data-status=(r.status.as_str()) {
                td { a href=(page_path(&r.id)) { (r.id) } }
                td {
                    (badge(r.status.as_str()))
                    @if !r.rolled_back_later.is_empty() {
                        " " span.dim { "rolled back later: " (r.rolled_back_later.join(", ")) }
                    }
                }
                td { (r.pipeline) }
                td { time datetime=(rfc3339_ms(r.created_at)) { (rfc3339_ms(r.created_at)) } }
                td { @for (k, v) in &r.variables { code { (k) "=" (v) } " " } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReleaseStatus;

    #[test]
    fn a_value_from_a_pipeline_is_text_never_markup() {
        let release = ReleaseRecord {
            id: "x-1".into(),
            pipeline: "x".into(),
            pipeline_file: "x.yaml".into(),
            pipeline_source: String::new(),
            status: ReleaseStatus::Failed,
            variables: [("v".to_string(), "<script>alert(1)</script>".to_string())].into(),
            reason: None,
            created_at: 0,
            updated_at: 0,
            rolled_back_later: Vec::new(),
        };
        let html = rows(&[release]).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains(r#"href="/releases/x-1""#), "{html}");
    }
}
