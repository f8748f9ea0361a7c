//! The page's compiled-in files and the one layout every page is composed into.

/// What a page's layout is filled with. `title`, `page`, `main`, `nav` and `cookies` are the
/// server's own constant text; `account`, `csrf` and `gateway` are values, escaped as
/// attributes.
pub(super) struct Fill<'a> {
    pub title: &'a str,
    pub page: &'a str,
    pub main: &'a str,
    pub nav: String,
    pub account: &'a str,
    pub csrf: &'a str,
    pub gateway: &'a str,
    /// `secure` or `insecure` (`--insecure-cookies`), for the sign-in page's plain-HTTP warning.
    pub cookies: &'static str,
}

const LAYOUT: &str = include_str!("../../assets/layout.html");

/// Every file under `/assets/`: name, content type, contents.
const FILES: &[(&str, &str, &str)] = &[
    (
        "sluice.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/sluice.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../assets/favicon.svg"),
    ),
    (
        "js/common.js",
        JS,
        include_str!("../../assets/js/common.js"),
    ),
    ("js/chart.js", JS, include_str!("../../assets/js/chart.js")),
    (
        "js/welcome.js",
        JS,
        include_str!("../../assets/js/welcome.js"),
    ),
    ("js/plans.js", JS, include_str!("../../assets/js/plans.js")),
    (
        "js/tokens.js",
        JS,
        include_str!("../../assets/js/tokens.js"),
    ),
    (
        "js/firehose.js",
        JS,
        include_str!("../../assets/js/firehose.js"),
    ),
    ("js/usage.js", JS, include_str!("../../assets/js/usage.js")),
    (
        "js/webhooks.js",
        JS,
        include_str!("../../assets/js/webhooks.js"),
    ),
    (
        "js/operator.js",
        JS,
        include_str!("../../assets/js/operator.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The content type and contents of asset `name`, if there is one.
pub(super) fn file(name: &str) -> Option<(&'static str, &'static str)> {
    FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, body)| (*content_type, *body))
}

/// The layout with `fill`'s parts in place, in one pass over the layout: what was filled in
/// is never searched for placeholders, so no value can smuggle one in.
pub(super) fn render(fill: &Fill<'_>) -> String {
    let mut page = String::with_capacity(LAYOUT.len() + fill.main.len() + 512);
    let mut rest = LAYOUT;
    while let Some(start) = rest.find("{{") {
        page.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        match &after[..end] {
            "title" => page.push_str(fill.title),
            "page" => page.push_str(fill.page),
            "nav" => page.push_str(&fill.nav),
            "main" => page.push_str(fill.main),
            "cookies" => page.push_str(fill.cookies),
            "account" => page.push_str(&attribute(fill.account)),
            "csrf" => page.push_str(&attribute(fill.csrf)),
            "gateway" => page.push_str(&attribute(fill.gateway)),
            unknown => panic!("layout.html names no placeholder `{unknown}`"),
        }
        rest = &after[end + 2..];
    }
    page.push_str(rest);
    page
}

/// `text` safe inside a double-quoted HTML attribute (and as element text).
pub(super) fn attribute(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(
            attribute(r#"a"><script>alert('x')</script>&"#),
            "a&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
        assert_eq!(attribute("alice-x7k2"), "alice-x7k2");
    }

    #[test]
    fn every_page_script_is_an_asset() {
        for page in [
            "welcome", "plans", "tokens", "firehose", "webhooks", "usage",
        ] {
            assert!(file(&format!("js/{page}.js")).is_some(), "{page}");
        }
        assert!(file("../Cargo.toml").is_none());
        let page = render(&Fill {
            title: "Plans",
            page: "plans",
            main: "<p>{{csrf}}</p>",
            nav: String::new(),
            account: "alice",
            csrf: "\"x",
            gateway: "https://x/{{main}}",
            cookies: "secure",
        });
        assert!(page.contains(r#"src="/assets/js/plans.js""#), "{page}");
        assert!(page.contains("&quot;x"), "{page}");
        assert!(
            page.contains("<p>{{csrf}}</p>"),
            "main is not a template: {page}"
        );
        assert!(!page.contains("<script>"), "no inline script: {page}");
    }
}
