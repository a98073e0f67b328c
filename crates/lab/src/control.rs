//! The control endpoint of `lab up`, on 127.0.0.1 only: stop and start one
//! service for real (its process ends; its port refuses connections), so a
//! person or the showdown page can watch each mode cope with a dependency
//! that is gone.
//!
//! `GET /services`, `POST /services/{name}/stop`, `POST /services/{name}/start`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use common::{Error, MODE};
use serde_json::{Value, json};

use crate::fleet::{Fleet, control_port};

/// Binds the control port and serves it in the background.
pub async fn serve(fleet: Arc<Fleet>) -> anyhow::Result<SocketAddr> {
    let port = control_port()?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} (set LAB_CONTROL_PORT)"))?;
    let address = listener.local_addr()?;
    let app = Router::new()
        .route("/services", get(list))
        .route("/services/{name}/stop", post(stop))
        .route("/services/{name}/start", post(start))
        .with_state(fleet);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("lab: the control endpoint stopped: {e}");
        }
    });
    Ok(address)
}

async fn list(State(fleet): State<Arc<Fleet>>) -> axum::Json<Value> {
    let services: Vec<Value> = fleet
        .states()
        .await
        .into_iter()
        .map(|(spec, state, running)| {
            json!({"name": spec.name, "port": spec.port(MODE), "state": state, "instances_running": running})
        })
        .collect();
    axum::Json(json!({"mode": MODE.as_str(), "services": services}))
}

async fn known(fleet: &Fleet, name: &str) -> Result<&'static common::ServiceSpec, Error> {
    let spec = common::services::find(name)
        .ok_or_else(|| Error::NotFound(format!("no service named {name}")))?;
    if !fleet.runs(spec.name).await {
        return Err(Error::NotFound(format!("{name} is not run by this lab")));
    }
    Ok(spec)
}

async fn stop(
    State(fleet): State<Arc<Fleet>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let spec = known(&fleet, &name).await?;
    fleet.stop(spec.name).await;
    eprintln!("lab: {} stopped on request", spec.name);
    Ok(axum::Json(json!({"name": spec.name, "state": "stopped"})))
}

async fn start(
    State(fleet): State<Arc<Fleet>>,
    Path(name): Path<String>,
) -> Result<axum::Json<Value>, Error> {
    let spec = known(&fleet, &name).await?;
    fleet.start(spec).await.map_err(Error::Internal)?;
    eprintln!("lab: {} started on request", spec.name);
    Ok(axum::Json(json!({"name": spec.name, "state": "running"})))
}
