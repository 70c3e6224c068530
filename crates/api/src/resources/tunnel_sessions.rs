//! (in progress)

use axum::Router;

use crate::ApiState;

/// The routes of this resource.
pub fn routes() -> Router<ApiState> {
    Router::new()
}
