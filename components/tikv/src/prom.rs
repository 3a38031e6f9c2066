//! Prometheus instant queries (`GET /api/v1/query`) and the metrics the adapter samples.
//!
//! Values arrive as strings (`"1"`, `"NaN"`, `"+Inf"`); aggregations drop `__name__`; errors
//! come as `{"status":"error","errorType":...,"error":...}` with HTTP 400/422/503.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::bindings::operator::core::types::{Label, MetricSample, SubjectError};

/// One sampled series: the stable name the adapter reports, its PromQL (the metric names and
/// expressions TiDB's own TiKV dashboards use), and its unit.
pub struct Query {
    pub name: &'static str,
    pub promql: &'static str,
    pub unit: &'static str,
}

/// What `get-cluster-metrics` asks Prometheus for.
pub const QUERIES: &[Query] = &[
    Query {
        name: "region-count",
        promql: r#"sum(tikv_raftstore_region_count{type="region"}) by (instance)"#,
        unit: "count",
    },
    Query {
        name: "leader-count",
        promql: r#"sum(tikv_raftstore_region_count{type="leader"}) by (instance)"#,
        unit: "count",
    },
    Query {
        name: "write-bytes-per-second",
        promql: r#"sum(rate(tikv_engine_flow_bytes{type="wal_file_bytes"}[1m])) by (instance)"#,
        unit: "bytes/s",
    },
    Query {
        name: "read-bytes-per-second",
        promql: r#"sum(rate(tikv_engine_flow_bytes{type=~"bytes_read|iter_bytes_read"}[1m])) by (instance)"#,
        unit: "bytes/s",
    },
    Query {
        name: "storage-used-bytes",
        promql: r#"sum(tikv_store_size_bytes{type="used"}) by (instance)"#,
        unit: "bytes",
    },
    Query {
        name: "storage-capacity-bytes",
        promql: r#"sum(tikv_store_size_bytes{type="capacity"}) by (instance)"#,
        unit: "bytes",
    },
    Query {
        name: "grpc-requests-per-second",
        promql: r#"sum(rate(tikv_grpc_msg_duration_seconds_count{type!="kv_gc"}[1m])) by (instance)"#,
        unit: "requests/s",
    },
];

#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// Parses a query answer (any status) into samples named `name`.
pub fn samples(query: &Query, status: u16, body: &[u8]) -> Result<Vec<MetricSample>, SubjectError> {
    let path = "/api/v1/query";
    let envelope: Envelope = crate::client::parse("prometheus", path, body).map_err(|e| match status {
        200..=299 => e,
        _ => SubjectError::BadResponse(format!("prometheus {path}: HTTP {status} without a Prometheus error body")),
    })?;
    if envelope.status != "success" {
        return Err(SubjectError::BadResponse(format!(
            "prometheus rejected `{}`: {} ({})",
            query.promql,
            envelope.error.unwrap_or_default(),
            envelope.error_type.unwrap_or_default()
        )));
    }
    let data = envelope
        .data
        .ok_or_else(|| SubjectError::BadResponse(format!("prometheus {path}: a success without `data`")))?;
    let vector: Vec<VectorSample> = match data.result_type.as_str() {
        "vector" => serde_json::from_value(data.result)
            .map_err(|e| SubjectError::BadResponse(format!("prometheus {path}: malformed vector: {e}")))?,
        other => {
            return Err(SubjectError::BadResponse(format!(
                "prometheus {path}: expected a vector for `{}`, got a {other}",
                query.promql
            )));
        }
    };
    vector
        .into_iter()
        .map(|s| {
            let value = parse_value(&s.value.1).ok_or_else(|| {
                SubjectError::BadResponse(format!("prometheus {path}: sample value {:?} is not a number", s.value.1))
            })?;
            let labels = s.metric.into_iter().filter(|(k, _)| k != "__name__").map(|(key, value)| Label { key, value });
            Ok(MetricSample { name: query.name.into(), labels: labels.collect(), value, unit: query.unit.into() })
        })
        .collect()
}

/// Prometheus writes numbers as Go does: `1`, `1.5e+06`, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}
