//! The gateway's OpenAPI document and documentation page, seen over HTTP from a live gateway:
//! the document passes an independent validator (`openapi-spec-validator`, installed into .venv
//! by demo/setup.sh), and `/docs` is HTML whose assets, served from the binary, all answer.

use std::time::Duration;

use faas_tests::{run_python, Mode, Stack, StatusCode};

async fn gateway_only() -> Stack {
    Stack::builder(Mode::Local)
        .without_dispatcher()
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_passes_openapi_spec_validator() {
    let stack = gateway_only().await;
    let url = format!("{}/openapi.json", stack.base_url());
    let out = run_python(
        r#"
import os, requests
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

resp = requests.get(os.environ["DOC_URL"], timeout=10)
assert resp.status_code == 200, resp.status_code
assert resp.headers["content-type"].startswith("application/json"), resp.headers
doc = resp.json()
assert doc["openapi"] == "3.1.0", doc["openapi"]
# Raises with the first violation; the 3.1 validator explicitly, not whatever it would guess.
validate(doc, cls=OpenAPIV31SpecValidator)
print(len(doc["paths"]), "paths valid")
"#,
        &[("DOC_URL", &url)],
    )
    .await;
    assert!(out.contains("paths valid"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_and_its_vendored_assets_answer() {
    let stack = gateway_only().await;
    let client = reqwest::Client::new();
    // `/docs` redirects to `/docs/`, where the page's relative links resolve.
    let resp = client
        .get(format!("{}/docs", stack.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/docs/");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = resp.text().await.unwrap();
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
        .collect();
    for needed in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        assert!(
            assets.iter().any(|a| a.ends_with(needed)),
            "{needed} not referenced by the page: {assets:?}"
        );
    }
    for asset in &assets {
        let url = resp_url(stack.base_url(), asset);
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{url} is empty");
    }
    // The page loads this gateway's own document.
    let init = client
        .get(format!("{}/docs/swagger-initializer.js", stack.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");
}

/// An asset link of the page at `/docs/`, made absolute.
fn resp_url(base: &str, link: &str) -> String {
    let link = link.trim_start_matches("./");
    if link.starts_with('/') {
        format!("{base}{link}")
    } else {
        format!("{base}/docs/{link}")
    }
}

/// Schemathesis (from .venv) fuzzes every documented operation of a live gateway, a bounded
/// number of examples each: no answer may be a 5xx, and every status code, content type and body
/// must match the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_mismatch() {
    let stack = gateway_only().await;
    let python = faas_tests::python();
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "{} missing: run ./demo/setup.sh (it installs schemathesis into .venv)",
        schemathesis.display()
    );
    let run = tokio::process::Command::new(&schemathesis)
        .arg("run")
        .arg(format!("{}/openapi.json", stack.base_url()))
        .args(["--max-examples", "30", "--request-timeout", "10", "--no-color"])
        // An event stream never ends, so a fuzzer's request to it can only time out; its
        // filters' bad input is tested in events.rs.
        .args(["--exclude-path", "/events"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .kill_on_drop(true)
        .output();
    let out = faas_tests::within(Duration::from_secs(600), "schemathesis", run)
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation Schemathesis found in the document but `/events` was exercised
    // ("Selected: 23/24", "Tested: 23"; it counts `/docs` and `/docs/` as one). The task API's
    // purge and deletes change only this test's own stack.
    let number_after = |label: &str| -> Vec<u32> {
        let rest = stdout.split(label).nth(1).unwrap_or_default();
        let line = rest.lines().next().unwrap_or_default();
        line.split('/')
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    let selected = number_after("Selected:");
    let tested = number_after("Tested:");
    assert!(
        selected.len() == 2
            && selected[0] + 1 == selected[1]
            && tested == [selected[0]]
            && tested[0] >= 22,
        "not every operation was tested ({selected:?}, {tested:?}):\n{stdout}"
    );
}
