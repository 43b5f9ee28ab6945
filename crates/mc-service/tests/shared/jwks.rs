//! A stand-in for AC's key endpoint, for MC tests that need verifiable keys but no tokens.
//! Included by the test binaries with `#[path]`.

/// Serves a JWKS with one Ed25519 key, standing in for AC's key endpoint.
pub async fn jwks_endpoint() -> String {
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"keys": [{
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
            }]}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}
