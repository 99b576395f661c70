//! `GET /models/{model}`: every model exists except those named `no-such…`.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::authorised;
use super::errors::{error, model_not_found};

pub(super) async fn get_model(headers: HeaderMap, Path(model): Path<String>) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    if model.starts_with("no-such") {
        return model_not_found(&model);
    }
    axum::Json(
        json!({"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}),
    )
    .into_response()
}
