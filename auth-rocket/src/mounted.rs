//! The platform's routes as a host app mounted them: found by comparing each
//! mounted route with the ones [`routes()`](crate::routes) and
//! [`well_known()`](crate::well_known) build (handler name, method and
//! unmounted path), and matched against request paths segment by segment.

use rocket::{Phase, Request, Rocket, Route, http::Method};

/// Whether `mounted` is `original` mounted somewhere.
pub(crate) fn is_mount_of(mounted: &Route, original: &Route) -> bool {
    mounted.name == original.name
        && mounted.method == original.method
        && mounted.uri.unmounted_origin.path() == original.uri.unmounted_origin.path()
}

/// The routes of `rocket` that are mounts of one of `originals`.
pub(crate) fn mounts_of<'a, P: Phase>(
    rocket: &'a Rocket<P>,
    originals: &'a [Route],
) -> impl Iterator<Item = &'a Route> {
    rocket.routes().filter(|route| originals.iter().any(|original| is_mount_of(route, original)))
}

/// A mounted path as segments; `None` stands for a dynamic one (`<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathPattern(Vec<Option<String>>);

impl PathPattern {
    pub(crate) fn of(route: &Route) -> Self {
        let segments = route.uri.path().split('/').filter(|s| !s.is_empty());
        Self(segments.map(|s| (!(s.starts_with('<') && s.ends_with('>'))).then(|| s.to_owned())).collect())
    }

    /// Without allocating: it runs on every request that carries a query.
    pub(crate) fn matches(&self, request: &Request<'_>) -> bool {
        let mut path = request.uri().path().segments();
        let same = |want: &Option<String>| path.next().is_some_and(|got| want.as_deref().is_none_or(|w| w == got));
        self.0.iter().all(same) && path.next().is_none()
    }
}

/// Each mounted path of `routes` with the methods it takes.
pub(crate) fn methods_by_path<'a>(routes: impl Iterator<Item = &'a Route>) -> Vec<(PathPattern, Vec<Method>)> {
    let mut paths: Vec<(PathPattern, Vec<Method>)> = Vec::new();
    for route in routes {
        let pattern = PathPattern::of(route);
        match paths.iter_mut().find(|(p, _)| *p == pattern) {
            Some((_, methods)) if !methods.contains(&route.method) => methods.push(route.method),
            Some(_) => {}
            None => paths.push((pattern, vec![route.method])),
        }
    }
    paths
}
