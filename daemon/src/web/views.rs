//! The pages' HTML, as maud templates: checked when Ferry compiles, every
//! interpolated value escaped. A layout, the error page, and the pages of
//! the Marketplace install and the sign-in; the console's tables live
//! beside their handlers in `console`.

use hyper::{Response, StatusCode};
use maud::{DOCTYPE, Markup, html};

use super::{WebResponse, body};

/// The navigation of a signed-in console page.
pub(crate) struct Nav<'a> {
    pub institution: &'a str,
    pub csrf: &'a str,
    pub current: &'a str,
}

const SECTIONS: [(&str, &str); 5] = [
    ("configurations", "Zoom configurations"),
    ("accounts", "Zoom accounts"),
    ("jobs", "Jobs"),
    ("media", "Media"),
    ("directory", "Directory"),
];

pub(crate) fn layout(title: &str, nav: Option<&Nav<'_>>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Ferry" }
                link rel="stylesheet" href="/admin/assets/console.css";
                script src="/admin/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "Ferry" }
                    @if let Some(nav) = nav {
                        nav {
                            @for (slug, label) in SECTIONS {
                                a href={ "/admin/" (slug) } class=[(nav.current == slug).then_some("current")] { (label) }
                            }
                        }
                        span.institution { (nav.institution) }
                        form method="post" action="/admin/sign-out" {
                            input type="hidden" name="csrf" value=(nav.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (content) }
            }
        }
    }
}

pub(crate) fn html_response(status: StatusCode, markup: Markup) -> WebResponse {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(body(markup.into_string()))
        .expect("html response")
}

pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> WebResponse {
    html_response(status, layout(title, None, html! { p.error { (message) } }))
}

/// The seed's Step 3, which the Zoom admin must still check.
pub(crate) fn step_three() -> Markup {
    html! {
        h2 { "Still to check in Zoom (Account Settings → Recording)" }
        ol.checklist {
            li { "Cloud recording is on (optionally locked, so that users cannot record locally)." }
            li { "Cloud recordings " strong { "Allow Downloads" } "." }
            li { "Cloud recordings allow anyone with the link to download." }
            li { strong { "Only the host can download cloud recordings" } " is " strong { "not" } " checked." }
        }
        p { "Only recordings made from now on are copied; existing cloud recordings are not." }
    }
}

pub(crate) fn token_prompt(
    account_id: &str,
    email: &str,
    csrf: &str,
    error: Option<&str>,
) -> Markup {
    layout(
        "Connect your Zoom account",
        None,
        html! {
            p { "Zoom account " code { (account_id) } " (signed in as " (email) ") approved the app." }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/zoom/install/token" {
                input type="hidden" name="csrf" value=(csrf);
                label for="configuration_token" { "Paste the Zoom configuration token from your institution's admin" }
                input id="configuration_token" type="password" name="configuration_token" autocomplete="off" required;
                button type="submit" id="install" { "Install" }
            }
        },
    )
}

pub(crate) fn installed(account_id: &str, institution: &str) -> Markup {
    layout(
        "Installed",
        None,
        html! {
            p.success role="status" {
                "Zoom account " code { (account_id) } " is now connected to " strong { (institution) } "."
            }
            (step_three())
        },
    )
}

pub(crate) fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="key" { "Admin key (or the operator token)" }
                input id="key" type="password" name="key" autocomplete="off" required;
                label for="institution_id" { "Institution id (operator token only)" }
                input id="institution_id" type="text" name="institution_id" autocomplete="off";
                button type="submit" id="sign-in" { "Sign in" }
            }
        },
    )
}
