//! The one place a fleet refusal becomes a gRPC status: a code a client can act on, and the
//! fleet's message, which is for the operator who asked.

use tonic::{Code, Status};

use crate::fleet::FleetError;

/// The code for each refusal.
pub(crate) fn code(e: &FleetError) -> Code {
    match e {
        FleetError::UnknownHost(_)
        | FleetError::NotDeclared { .. }
        | FleetError::NoAck { .. }
        | FleetError::NoBaseline(_) => Code::NotFound,
        FleetError::ExpiryInPast | FleetError::BadWindow(_) => Code::InvalidArgument,
        FleetError::ContentWithheld(_) => Code::PermissionDenied,
        FleetError::Offline(_)
        | FleetError::NotReading(_)
        | FleetError::Agent(_)
        | FleetError::NoOpenDrift { .. }
        | FleetError::Holder { .. } => Code::FailedPrecondition,
        FleetError::StreamTaken { .. } => Code::AlreadyExists,
        FleetError::StoreWaiting(_) | FleetError::StoreCannotWrite(_) | FleetError::Stopped => {
            Code::Unavailable
        }
        FleetError::Store(_) => Code::Internal,
    }
}

impl From<FleetError> for Status {
    fn from(e: FleetError) -> Self {
        Status::new(code(&e), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_codes_a_client_can_act_on() {
        let cases = [
            (FleetError::UnknownHost("web-9".into()), Code::NotFound),
            (FleetError::ExpiryInPast, Code::InvalidArgument),
            (
                FleetError::BadWindow("change CHG-1 exists already".into()),
                Code::InvalidArgument,
            ),
            (
                FleetError::ContentWithheld("/etc/shadow is declared sensitive".into()),
                Code::PermissionDenied,
            ),
            (
                FleetError::Offline("web-1".into()),
                Code::FailedPrecondition,
            ),
            (
                FleetError::NoAck {
                    host: "web-1".into(),
                    resource: "file:/etc/a".into(),
                },
                Code::NotFound,
            ),
            (FleetError::Stopped, Code::Unavailable),
        ];
        for (e, want) in cases {
            let message = e.to_string();
            let status = Status::from(e);
            assert_eq!(status.code(), want, "{message}");
            assert_eq!(status.message(), message, "the fleet's words, unchanged");
        }
        assert_eq!(
            Status::from(FleetError::UnknownHost("web-9".into())).message(),
            "no host \"web-9\" is known to this controller"
        );
    }
}
