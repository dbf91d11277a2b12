//! The gateway's OpenAPI 3.1 document (`GET /openapi.json`) and its interactive page (`GET /docs`).
//!
//! The document is not written by hand: every route of the API is added to the router through
//! [`api`], an [`OpenApiRouter`] whose `routes!` entries register the handler and its
//! `#[utoipa::path]` description together, and the schemas are derived from the very types the
//! handlers take and return (`faas-protocol`'s `openapi` feature). A route that is served is
//! therefore documented; `app` in the parent module adds no route of its own, and a test keeps it
//! that way.
//!
//! Token rules: `/openapi.json` and `/docs` answer without the token, like `/healthz`. They
//! reveal no data, only the API's shape, which is the same for every installation and is
//! published with the code; and a browser cannot send a bearer header when it loads a page, so a
//! guarded `/docs` could never be opened on a gateway that has a token. Every other route stays
//! guarded (the document says so with its `bearer` security scheme: paste the token into the
//! page's "Authorize" dialog to try requests). The Swagger UI assets are compiled into the binary
//! (`utoipa-swagger-ui`'s `vendored` feature): nothing is fetched at build or run time.

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use faas_protocol::api::ErrorReply;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::Config;

use super::error::ApiError;
use super::{batch, events, handlers, metrics, results_wait, task_api, workers, AppState};

/// Where the interactive page lives; its assets are under it.
const DOCS: &str = "/docs";

/// Whether `path` is the document, the page or one of its assets: these need no token (see the
/// module docs for why).
pub fn is_open(path: &str) -> bool {
    path == "/openapi.json"
        || path
            .strip_prefix(DOCS)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FaaS gateway",
        description = "Register functions, execute them and read their results. Every error is \
            a JSON `{\"error\": \"...\"}`. When the gateway has a token (`--token`), every route \
            but `/healthz`, `/openapi.json` and `/docs` needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerToken),
    components(schemas(ErrorReply)),
    tags(
        (name = "functions", description = "Registering and listing functions"),
        (name = "tasks", description = "Executing functions and reading their results"),
        (name = "operations", description = "Health, metrics, workers and this documentation"),
    )
)]
struct ApiDoc;

/// Adds the bearer-token scheme and requires it everywhere; open operations say `security(())`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Every route of the API with its description: the one place routes are added.
pub(super) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::register_function))
        .routes(routes!(handlers::functions, handlers::create_function))
        .routes(routes!(handlers::execute_function))
        .routes(routes!(batch::execute_batch))
        .routes(routes!(results_wait::wait_results))
        .routes(routes!(handlers::status))
        .routes(routes!(handlers::result))
        .routes(routes!(handlers::get_task_status))
        .routes(routes!(handlers::get_task_result))
        .routes(routes!(handlers::task))
        .routes(routes!(task_api::list_tasks))
        .routes(routes!(task_api::cancel_task))
        .routes(routes!(task_api::retry_task))
        .routes(routes!(task_api::purge_queue))
        .routes(routes!(
            task_api::function_detail,
            task_api::delete_function
        ))
        .routes(routes!(workers::workers))
        .routes(routes!(workers::drain_worker))
        .routes(routes!(events::events))
        .routes(routes!(handlers::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
        .routes(routes!(docs_index))
        .routes(routes!(docs_asset))
}

/// The document as served, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        api()
            .into_openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
pub async fn openapi_json() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        document(),
    )
        .into_response()
}

/// The interactive page moved to `/docs/`, so that its relative asset links resolve.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    security(()),
    responses((status = 303, description = "See `/docs/`"))
)]
pub async fn docs() -> Redirect {
    Redirect::to(&format!("{DOCS}/"))
}

/// The interactive documentation (Swagger UI) of this document.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The Swagger UI page", body = String, content_type = "text/html"))
)]
pub async fn docs_index() -> Response {
    asset("index.html")
}

/// A file of the page (scripts, style sheets, icons), from the copy compiled into the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "operations",
    security(()),
    params(("file" = String, Path, description = "Name of the asset, e.g. `swagger-ui.css`")),
    responses(
        (status = 200, description = "The asset", body = String, content_type = "application/octet-stream"),
        (status = 404, description = "No such asset", body = ErrorReply),
    )
)]
pub async fn docs_asset(Path(file): Path<String>) -> Response {
    asset(&file)
}

fn asset(file: &str) -> Response {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        // Try-it-out requests keep the token the operator entered across reloads of the page.
        Arc::new(Config::new(["/openapi.json"]).persist_authorization(true))
    });
    match utoipa_swagger_ui::serve(file, config.clone()) {
        Ok(Some(f)) => {
            let mut resp = (
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_str(&f.content_type)
                        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                )],
                f.bytes.into_owned(),
            )
                .into_response();
            if f.gzpipped {
                resp.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        }
        Ok(None) => ApiError::NotFound(format!("no documentation asset {file:?}")).into_response(),
        Err(e) => {
            // Only the page's configuration is formatted at run time; it is ours and valid.
            tracing::error!(event = "docs_render_failed", error = %e, "cannot render the documentation page");
            ApiError::NotFound(format!("documentation asset {file:?} is unavailable"))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use axum::Router;
    use faas_protocol::Keys;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use super::super::{app, AppState, GatewayConfig};
    use crate::store::Store;

    /// A private redis-server on a Unix socket in a temp dir; killed and removed on drop.
    struct Redis {
        child: Child,
        dir: PathBuf,
    }

    impl Redis {
        fn start() -> Self {
            let dir = std::env::temp_dir().join(format!("faas-openapi-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--unixsocket",
                ])
                .arg(dir.join("redis.sock"))
                .current_dir(&dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server (installed by demo/setup.sh)");
            Self { child, dir }
        }

        fn url(&self) -> String {
            format!("redis+unix://{}", self.dir.join("redis.sock").display())
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn router(redis: &Redis, token: Option<&str>) -> Router {
        let shutdown = CancellationToken::new();
        let store = tokio::time::timeout(
            Duration::from_secs(20),
            Store::connect(
                &redis.url(),
                Keys::new("openapi-test"),
                Duration::from_secs(2),
                &shutdown,
            ),
        )
        .await
        .expect("redis answers within 20 s")
        .unwrap()
        .unwrap();
        app(AppState::new(store, GatewayConfig::default()).with_token(token.map(str::to_owned)))
    }

    async fn call(
        router: &Router,
        method: Method,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method.clone()).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = if method == Method::POST {
            Body::from("{}")
        } else {
            Body::empty()
        };
        let resp = router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn document() -> Value {
        serde_json::from_str(super::document()).unwrap()
    }

    /// Every documented operation, as (method, path template).
    fn operations(doc: &Value) -> Vec<(Method, String)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.push((method.to_uppercase().parse().unwrap(), path.clone()));
            }
        }
        ops
    }

    fn concrete(path: &str) -> String {
        path.replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{file}", "index.html")
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme_and_every_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let ops = operations(&doc);
        for (method, path) in [
            ("POST", "/register_function"),
            ("GET", "/functions"),
            ("POST", "/functions"),
            ("POST", "/execute_function"),
            ("POST", "/execute_batch"),
            ("POST", "/results/wait"),
            ("GET", "/status/{id}"),
            ("GET", "/result/{id}"),
            ("GET", "/get_task_status/{id}"),
            ("GET", "/get_task_result/{id}"),
            ("GET", "/tasks/{id}"),
            ("GET", "/tasks"),
            ("POST", "/tasks/{id}/cancel"),
            ("POST", "/tasks/{id}/retry"),
            ("POST", "/queue/purge"),
            ("GET", "/functions/{id}"),
            ("DELETE", "/functions/{id}"),
            ("GET", "/workers"),
            ("GET", "/healthz"),
            ("GET", "/metrics"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
        ] {
            assert!(
                ops.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is not documented"
            );
        }
        // The open routes say so; the others inherit the document's bearer requirement.
        for open in [
            "/healthz",
            "/openapi.json",
            "/docs",
            "/docs/",
            "/docs/{file}",
        ] {
            assert_eq!(
                doc["paths"][open]["get"]["security"],
                serde_json::json!([{}]),
                "{open}"
            );
        }
        assert!(doc["paths"]["/workers"]["get"].get("security").is_none());
        // Every guarded operation documents its 401 and every error body is `{"error"}` (a
        // task's 409 `ConflictReply` adds the task's status to it; a worker's 409 has none).
        for (method, path) in &ops {
            let op = &doc["paths"][path][method.as_str().to_lowercase()];
            if op.get("security").is_none() {
                assert!(
                    op["responses"].get("401").is_some(),
                    "{method} {path} lacks its 401"
                );
            }
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = if status == "409" && !path.starts_with("/workers/") {
                        "ConflictReply"
                    } else {
                        "ErrorReply"
                    };
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["$ref"],
                        format!("#/components/schemas/{schema}"),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    /// The router serves exactly the documented operations: each is routed (not the fallback's
    /// 404 nor a 405), every other method on a documented path is a 405, and `app` adds no route
    /// outside [`super::api`] (the only other source of routes it could have).
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_routes() {
        let redis = Redis::start();
        let router = router(&redis, None).await;
        let doc = document();
        let ops = operations(&doc);
        assert!(ops.len() >= 23, "{ops:?}");
        for (method, path) in &ops {
            let (status, body) = call(&router, method.clone(), &concrete(path), None).await;
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("no route for"),
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
        let paths: std::collections::BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
        for path in paths {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::PATCH,
            ] {
                if ops.iter().any(|(m, p)| m == method && p == path) {
                    continue;
                }
                let (status, _) = call(&router, method.clone(), &concrete(path), None).await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
        let source = include_str!("mod.rs");
        for adds_routes in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
        ] {
            assert!(
                !source.contains(adds_routes),
                "gateway/mod.rs calls {adds_routes}: add routes in openapi::api, documented"
            );
        }
    }

    /// With a token, the document and the page (and its assets) answer without it; the API and
    /// unknown paths near them do not.
    #[tokio::test]
    async fn docs_are_open_and_the_api_is_not() {
        let redis = Redis::start();
        let router = router(&redis, Some("s3cret")).await;
        let (status, body) = call(&router, Method::GET, "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, super::document());
        let (status, _) = call(&router, Method::GET, "/docs", None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (status, page) = call(&router, Method::GET, "/docs/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("swagger-ui-bundle.js"), "{page}");
        for asset in [
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "swagger-initializer.js",
        ] {
            let (status, body) = call(&router, Method::GET, &format!("/docs/{asset}"), None).await;
            assert_eq!(status, StatusCode::OK, "{asset}");
            assert!(!body.is_empty(), "{asset}");
        }
        let (_, init) = call(&router, Method::GET, "/docs/swagger-initializer.js", None).await;
        assert!(init.contains("\"/openapi.json\""), "{init}");
        let (status, body) = call(&router, Method::GET, "/docs/missing.js", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.starts_with("{\"error\""), "{body}");
        for guarded in [
            "/workers",
            "/functions",
            "/docsx",
            "/openapi.jsonx",
            "/metrics",
        ] {
            let (status, _) = call(&router, Method::GET, guarded, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{guarded}");
        }
        let (status, _) = call(&router, Method::GET, "/workers", Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK);
    }
}
