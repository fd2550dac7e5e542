//! The volume routes (Moby's `api/server/router/volume` `volume_routes.go`) over the
//! getter's [`VolumeService`]: `POST /volumes/create`, `GET /volumes`,
//! `GET /volumes/{name}`, `DELETE /volumes/{name}`, with dockerd's JSON shapes and texts.

use std::collections::BTreeMap;

use dockplug_getter::volume::{Volume, VolumeError, VolumeService};
use dockplug_protocol::filters::Filters;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorKind};
use crate::reply::{self, Reply};
use crate::router::RouteRequest;
use crate::server::EngineBuilder;

/// Adds the volume routes to `builder`.
pub fn routes(builder: EngineBuilder, service: VolumeService) -> EngineBuilder {
    let (s1, s2, s3, s4) = (service.clone(), service.clone(), service.clone(), service);
    builder
        .route(Method::GET, "/volumes", move |r| list(s1.clone(), r))
        .route(Method::POST, "/volumes/create", move |r| create(s2.clone(), r))
        .route(Method::GET, "/volumes/{name:.*}", move |r| inspect(s3.clone(), r))
        .route(Method::DELETE, "/volumes/{name:.*}", move |r| remove(s4.clone(), r))
}

/// `volume.Volume` of the Engine API, in its field order (API 1.41: no `ClusterVolume`).
#[derive(Debug, Serialize)]
struct ApiVolume<'a> {
    #[serde(rename = "CreatedAt", skip_serializing_if = "str::is_empty")]
    created_at: &'a str,
    #[serde(rename = "Driver")]
    driver: &'a str,
    #[serde(rename = "Labels")]
    labels: &'a Option<BTreeMap<String, String>>,
    #[serde(rename = "Mountpoint")]
    mountpoint: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Options")]
    options: &'a Option<BTreeMap<String, String>>,
    #[serde(rename = "Scope")]
    scope: &'a str,
    #[serde(rename = "Status", skip_serializing_if = "is_empty_status")]
    status: &'a Option<serde_json::Map<String, serde_json::Value>>,
}

fn is_empty_status(s: &&Option<serde_json::Map<String, serde_json::Value>>) -> bool {
    s.as_ref().is_none_or(|m| m.is_empty())
}

impl<'a> From<&'a Volume> for ApiVolume<'a> {
    fn from(v: &'a Volume) -> Self {
        Self {
            created_at: &v.created_at,
            driver: &v.driver,
            labels: &v.labels,
            mountpoint: &v.mountpoint,
            name: &v.name,
            options: &v.options,
            scope: &v.scope,
            status: &v.status,
        }
    }
}

/// `volume.CreateOptions` (the CLI sends every key).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreateBody {
    #[serde(rename = "Name", alias = "name")]
    name: String,
    #[serde(rename = "Driver", alias = "driver")]
    driver: String,
    #[serde(rename = "DriverOpts", alias = "driverOpts")]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "Labels", alias = "labels")]
    labels: Option<BTreeMap<String, String>>,
}

fn api_error(e: VolumeError) -> ApiError {
    ApiError::from_error(ErrorKind::from_status(e.http_status()), e)
}

async fn create(service: VolumeService, r: RouteRequest) -> Result<Reply, ApiError> {
    let body: CreateBody = r
        .json()
        .await?
        .ok_or_else(|| ApiError::invalid_parameter("got EOF while reading request body"))?;
    let v = service
        .create(&body.name, &body.driver, body.driver_opts, body.labels)
        .await
        .map_err(api_error)?;
    Ok(reply::json(StatusCode::CREATED, &ApiVolume::from(&v)))
}

async fn list(service: VolumeService, r: RouteRequest) -> Result<Reply, ApiError> {
    let filters = Filters::from_json(r.query("filters"))
        .map_err(|e| ApiError::invalid_parameter(format!("error reading volume filters: {e}")))?;
    let (volumes, warnings) = service.list(&filters).await.map_err(api_error)?;
    #[derive(Serialize)]
    struct ListBody<'a> {
        #[serde(rename = "Volumes")]
        volumes: Vec<ApiVolume<'a>>,
        #[serde(rename = "Warnings")]
        warnings: Option<Vec<String>>,
    }
    let body = ListBody {
        volumes: volumes.iter().map(ApiVolume::from).collect(),
        warnings: (!warnings.is_empty()).then_some(warnings),
    };
    Ok(reply::json(StatusCode::OK, &body))
}

async fn inspect(service: VolumeService, r: RouteRequest) -> Result<Reply, ApiError> {
    let v = service.get(r.param()).await.map_err(api_error)?;
    Ok(reply::json(StatusCode::OK, &ApiVolume::from(&v)))
}

async fn remove(service: VolumeService, r: RouteRequest) -> Result<Reply, ApiError> {
    let force = r.query_bool("force");
    service.remove(r.param(), force).await.map_err(api_error)?;
    Ok(reply::empty(StatusCode::NO_CONTENT))
}
