//! The part of the agent protocol the job runner speaks, as a trait: [`AgentClient`] in
//! production, a scripted fake in the runner's tests. Errors are reduced to what the runner
//! decides on: retry later (transport trouble, 5xx, 401/408/429) or give up on this report
//! (any other 4xx: the server understood and refused it, so repeating it is pointless).

use std::future::Future;

use capstan_client::agent::AgentClient;
use capstan_proto::jobs::{
    ClaimResponse, OutputReport, RunControl, RunFinished, RunRebooting, RunStarted,
};

/// A failed request, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    /// The server refused this request for good; retrying cannot help.
    pub permanent: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
impl ApiError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<capstan_client::Error> for ApiError {
    fn from(err: capstan_client::Error) -> Self {
        let permanent = match (&err, err.status()) {
            // A run id that cannot be put in a URL will never become valid.
            (capstan_client::Error::Config(_), _) => true,
            (_, Some(status)) => (400..500).contains(&status) && ![401, 408, 429].contains(&status),
            (_, None) => false,
        };
        Self {
            message: crate::daemon::error_chain(&err),
            permanent,
        }
    }
}

/// The job endpoints of `/agent/v1`, bound to this device.
pub trait RunApi: Clone + Send + Sync + 'static {
    fn claim(&self) -> impl Future<Output = Result<ClaimResponse, ApiError>> + Send;
    fn started(
        &self,
        run_id: &str,
        report: &RunStarted,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send;
    fn output(
        &self,
        run_id: &str,
        report: &OutputReport,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send;
    fn rebooting(
        &self,
        run_id: &str,
        report: &RunRebooting,
    ) -> impl Future<Output = Result<RunControl, ApiError>> + Send;
    fn finished(
        &self,
        run_id: &str,
        report: &RunFinished,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

impl RunApi for AgentClient {
    async fn claim(&self) -> Result<ClaimResponse, ApiError> {
        self.claim_runs().await.map_err(ApiError::from)
    }

    async fn started(&self, run_id: &str, report: &RunStarted) -> Result<RunControl, ApiError> {
        self.run_started(run_id, report)
            .await
            .map_err(ApiError::from)
    }

    async fn output(&self, run_id: &str, report: &OutputReport) -> Result<RunControl, ApiError> {
        self.run_output(run_id, report)
            .await
            .map_err(ApiError::from)
    }

    async fn rebooting(&self, run_id: &str, report: &RunRebooting) -> Result<RunControl, ApiError> {
        self.run_rebooting(run_id, report)
            .await
            .map_err(ApiError::from)
    }

    async fn finished(&self, run_id: &str, report: &RunFinished) -> Result<(), ApiError> {
        self.run_finished(run_id, report)
            .await
            .map_err(ApiError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::error::{ErrorBody, ErrorCode};

    #[test]
    fn client_errors_are_classified_for_retry() {
        let api = |status: u16| {
            capstan_client::Error::Api(ErrorBody {
                status,
                code: ErrorCode::ValidationFailed,
                message: "m".into(),
            })
        };
        let cases = [
            (api(400), true),
            (api(404), true),
            (api(409), true),
            (api(413), true),
            (api(401), false),
            (api(408), false),
            (api(429), false),
            (api(500), false),
            (api(503), false),
            (
                capstan_client::Error::Status {
                    status: 502,
                    body: String::new(),
                },
                false,
            ),
            (capstan_client::Error::Config("bad run id".into()), true),
        ];
        for (err, permanent) in cases {
            let text = err.to_string();
            assert_eq!(ApiError::from(err).permanent, permanent, "{text}");
        }
    }
}
