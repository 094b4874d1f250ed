//! The line view: one page, its style and its script, all served by the station (no external assets; it works on
//! a screen with no other network). The script reads `/events` and draws one tile per bench.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const HTML: &str = include_str!("assets/line.html");
const CSS: &str = include_str!("assets/line.css");
const JS: &str = include_str!("assets/line.js");

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

pub fn html() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

pub fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_writes_no_markup_from_data() {
        for (name, text) in [("line.html", HTML), ("line.css", CSS), ("line.js", JS)] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(needle), "{name} refers to {needle}");
            }
        }
        assert!(HTML.contains("src=\"/line.js\"") && HTML.contains("href=\"/line.css\""));
        // Serials, codes and device messages come from devices: text only, never parsed as HTML.
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!JS.contains(sink), "line.js uses {sink}");
        }
    }
}
