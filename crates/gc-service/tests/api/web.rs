//! The meeting page GC serves (`GC_WEB_DIR`): its policy, its files, and what it refuses. The
//! client itself is tested in a real browser by `web/tests` (scripts/web-tests.sh); here a
//! stand-in build in a temporary directory is enough.

use std::path::{Path, PathBuf};

use gc_service::config::WebSettings;
use gc_service::web::WebClient;
use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{McRedis, StackOptions, TestStack, WEB_ORIGIN, error_code, spawn_stack};

/// A built client: the page with its placeholder, a script, a style sheet, and a file that is
/// neither and must never be served.
fn client_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convene-web-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        r#"<!doctype html><meta name="convene-ac-url" content="__CONVENE_AC_URL__"><script type="module" src="/assets/main.js"></script>"#,
    )
    .unwrap();
    std::fs::write(dir.join("assets/main.js"), "console.log('convene');\n").unwrap();
    std::fs::write(dir.join("assets/app.css"), "body { margin: 0 }\n").unwrap();
    std::fs::write(dir.join("assets/notes.txt"), "not part of the client").unwrap();
    std::fs::write(dir.join("secret.env"), "NOT=served").unwrap();
    dir
}

async fn spawn_with_web(pool: PgPool, dir: &Path, ac_url: Option<&str>) -> TestStack {
    let settings = WebSettings {
        web_dir: Some(dir.to_path_buf()),
        web_ac_url: ac_url.map(str::to_owned),
        connect_src: vec!["wss://*.mc.example.com".into()],
    };
    spawn_stack(pool, StackOptions::default().with_web(settings)).await
}

async fn get(stack: &TestStack, path: &str) -> reqwest::Response {
    stack.client.get(stack.gc_url(path)).send().await.unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_page_and_every_join_url_carry_a_strict_policy(pool: PgPool) {
    let dir = client_dir("policy");
    let mut stack = spawn_with_web(pool, &dir, Some("https://ac.example.com/")).await;
    stack.start_mc(0, "web", McRedis::Single).await;
    let mc_id = crate::helpers::MC_CLIENTS[0].0;
    stack.wait_registered(mc_id).await;
    let mc_ws: String = sqlx::query_scalar("select ws_url from meeting_controllers where id = $1")
        .bind(mc_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();

    for path in ["/", "/m/Ab3dE5fG7hJ9", "/m/not-even-a-code"] {
        let response = get(&stack, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let policy = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-"), "{policy}");
        let connect = policy
            .split(';')
            .find_map(|d| d.trim().strip_prefix("connect-src "))
            .unwrap();
        let sources: Vec<&str> = connect.split(' ').collect();
        let mc_origin = mc_ws.trim_end_matches('/').to_owned();
        assert_eq!(
            sources,
            vec![
                "'self'",
                "https://ac.example.com",
                "wss://*.mc.example.com",
                mc_origin.as_str()
            ],
            "{policy}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains(r#"content="https://ac.example.com""#),
            "{body}"
        );
        assert!(!body.contains("__CONVENE_AC_URL__"));
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn only_the_clients_scripts_and_styles_are_served_with_validators(pool: PgPool) {
    let dir = client_dir("assets");
    let stack = spawn_with_web(pool, &dir, None).await;

    let script = get(&stack, "/assets/main.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers()["x-content-type-options"], "nosniff");
    let etag = script.headers()["etag"].clone();
    assert_eq!(script.text().await.unwrap(), "console.log('convene');\n");
    let css = get(&stack, "/assets/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let again = stack
        .client
        .get(stack.gc_url("/assets/main.js"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag);

    for path in [
        "/assets/notes.txt",
        "/assets/missing.js",
        "/assets/..%2Fsecret.env",
        "/assets/%2E%2E%2Findex.html",
        "/assets/main.js%00.css",
        "/assets/MAIN.JS",
        "/secret.env",
        "/index.html",
        "/m/",
    ] {
        let response = get(&stack, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(response).await, "NOT_FOUND", "{path}");
    }
    // The page's AC URL defaults to AC_URL.
    let page = get(&stack, "/").await.text().await.unwrap();
    assert!(
        page.contains(&format!(r#"content="{}""#, stack.ac.base)),
        "{page}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn without_a_web_directory_there_are_no_pages(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    for path in ["/", "/m/Ab3dE5fG7hJ9", "/assets/main.js"] {
        let response = get(&stack, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(response).await, "NOT_FOUND");
    }
}

#[test]
fn a_bad_web_directory_stops_start_up_with_a_reason() {
    let settings = |dir: PathBuf| WebSettings {
        web_dir: Some(dir),
        ..WebSettings::default()
    };
    let missing = std::env::temp_dir().join("convene-web-does-not-exist");
    let error = format!(
        "{:#}",
        WebClient::load(&settings(missing), "http://ac")
            .err()
            .unwrap()
    );
    assert!(error.contains("npm run build"), "{error}");

    let dir = client_dir("bad");
    std::fs::write(dir.join("index.html"), "<!doctype html>").unwrap();
    let error = format!(
        "{:#}",
        WebClient::load(&settings(dir.clone()), "http://ac")
            .err()
            .unwrap()
    );
    assert!(error.contains("placeholder"), "{error}");

    let dir = client_dir("big");
    std::fs::write(dir.join("assets/huge.js"), vec![b'x'; 2 * 1024 * 1024]).unwrap();
    let error = format!(
        "{:#}",
        WebClient::load(&settings(dir), "http://ac").err().unwrap()
    );
    assert!(error.contains("over the"), "{error}");

    // A script that is a device (a wrong link) is cut off, not read forever.
    let dir = client_dir("device");
    std::os::unix::fs::symlink("/dev/zero", dir.join("assets/endless.js")).unwrap();
    let error = format!(
        "{:#}",
        WebClient::load(&settings(dir), "http://ac").err().unwrap()
    );
    assert!(error.contains("over the"), "{error}");

    let dir = client_dir("src");
    let bad_source = WebSettings {
        web_dir: Some(dir),
        connect_src: vec!["wss://x.example.com; script-src *".into()],
        ..WebSettings::default()
    };
    let error = format!(
        "{:#}",
        WebClient::load(&bad_source, "http://ac").err().unwrap()
    );
    assert!(error.contains("GC_WEB_CONNECT_SRC"), "{error}");
}

/// AC answers the page's CORS requests for sign-in, from the configured origin only, and for
/// no other route.
#[sqlx::test(migrations = "../../migrations")]
async fn ac_lets_the_page_sign_in_from_its_origin_only(pool: PgPool) {
    let stack = spawn_stack(pool, StackOptions::default()).await;
    let preflight = |origin: &'static str, path: &'static str| {
        stack
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", stack.ac.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(WEB_ORIGIN, "/api/v1/auth/user/token")
        .await
        .unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], WEB_ORIGIN);
    assert!(
        allowed.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    for (origin, path) in [
        ("http://evil.test", "/api/v1/auth/user/token"),
        ("http://meet.test.evil.test", "/api/v1/auth/user/token"),
        ("null", "/api/v1/auth/user/token"),
        (WEB_ORIGIN, "/api/v1/auth/service/token"),
        (WEB_ORIGIN, "/api/v1/admin/orgs"),
    ] {
        let response = preflight(origin, path).await.unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin} {path}"
        );
    }

    let signed_in = stack
        .client
        .post(format!("{}/api/v1/auth/user/token", stack.ac.base))
        .header("origin", WEB_ORIGIN)
        .json(&serde_json::json!({"email": crate::helpers::HOST, "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    assert_eq!(
        signed_in.headers()["access-control-allow-origin"],
        WEB_ORIGIN
    );
}
