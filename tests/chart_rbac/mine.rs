//! The test's own requests, recorded so that what is left in the server's log is the
//! operator's.

use std::future::Future;
use std::sync::Mutex;

use jobqueue_test_support::apiserver::{RequestRecord, TestApiServer};

/// The test's own requests, so that what is left in the server's log is the operator's.
/// Each call is bracketed by the log's length before and after it: the test's request is one
/// record in that range with the given verb and resource and no subresource, as the test never
/// calls one (an identical operator request in the same range is indistinguishable and
/// equivalent, so removing either is right; the operator's `get statefulsets/scale` is not).
pub struct Mine<'a> {
    pub server: &'a TestApiServer,
    pub spans: Mutex<Vec<(usize, usize, &'static str, &'static str)>>,
}

impl<'a> Mine<'a> {
    pub async fn call<T>(
        &self,
        verb: &'static str,
        resource: &'static str,
        request: impl Future<Output = T>,
    ) -> T {
        let before = self.server.requests().len();
        let out = request.await;
        let after = self.server.requests().len();
        self.spans
            .lock()
            .unwrap()
            .push((before, after, verb, resource));
        out
    }

    /// The log without the test's own requests.
    pub fn operator_requests(&self) -> Vec<RequestRecord> {
        let log = self.server.requests();
        let mut taken = vec![false; log.len()];
        for &(before, after, verb, resource) in self.spans.lock().unwrap().iter() {
            let i = (before..after)
                .find(|&i| !taken[i] && log[i].is(verb, resource) && log[i].subresource.is_none())
                .unwrap_or_else(|| {
                    panic!("the test's {verb} {resource} is not in the log at {before}..{after}")
                });
            taken[i] = true;
        }
        log.into_iter()
            .zip(taken)
            .filter(|(_, t)| !t)
            .map(|(r, _)| r)
            .collect()
    }
}
