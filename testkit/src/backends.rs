//! One test body, run on every backend: [`on_both_backends!`](crate::on_both_backends) for the
//! account database (SQLite, PostgreSQL), [`on_each_log_backend!`](crate::on_each_log_backend)
//! for the log (SQLite, in-process, Redis).

/// For each named `async fn(&F)` in scope, a module named after it holding two `#[tokio::test]`s,
/// `sqlite` and `postgres`: each builds the fixture (`F::sqlite()` or `F::postgres()`), runs the
/// body on it, then calls its `finish()`. Test names read `module::body::sqlite` and
/// `module::body::postgres`.
///
/// `F` is the calling test crate's fixture type, named by a path that resolves from inside the
/// generated module (`crate::TestDb`). It provides `async fn sqlite() -> F`,
/// `async fn postgres() -> F` and `async fn finish(self)`. The calling crate needs `tokio` (with
/// its `macros` and `rt` features) among its dependencies, for `#[tokio::test]`.
///
/// ```ignore
/// testkit::on_both_backends!(crate::TestDb; creates_an_account, renames_an_account);
///
/// async fn creates_an_account(db: &crate::TestDb) { /* … */ }
/// async fn renames_an_account(db: &crate::TestDb) { /* … */ }
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($fixture:ty; $($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[tokio::test]
                async fn sqlite() {
                    let fixture = <$fixture>::sqlite().await;
                    super::$body(&fixture).await;
                    fixture.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let fixture = <$fixture>::postgres().await;
                    super::$body(&fixture).await;
                    fixture.finish().await;
                }
            }
        )*
    };
}

/// For each named `async fn(B)` in scope, a module named after it holding three
/// `#[tokio::test]`s, `sqlite`, `memory` and `redis`, each running the body with the given value
/// of the calling crate's backend type (paths that resolve from inside the generated module,
/// e.g. `crate::Backend::Memory`). Test names read `module::body::sqlite`, `module::body::memory`
/// and `module::body::redis`.
///
/// ```ignore
/// testkit::on_each_log_backend!(
///     crate::Backend::Sqlite, crate::Backend::Memory, crate::Backend::Redis;
///     delivers_in_order,
/// );
///
/// async fn delivers_in_order(backend: crate::Backend) { /* … */ }
/// ```
#[macro_export]
macro_rules! on_each_log_backend {
    ($sqlite:expr, $memory:expr, $redis:expr; $($body:ident),* $(,)?) => {
        $(
            mod $body {
                #[tokio::test]
                async fn sqlite() {
                    super::$body($sqlite).await;
                }

                #[tokio::test]
                async fn memory() {
                    super::$body($memory).await;
                }

                #[tokio::test]
                async fn redis() {
                    super::$body($redis).await;
                }
            }
        )*
    };
}
