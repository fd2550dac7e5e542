//! Hostile peers, each case bounded and measured: clients that abuse the SDK server
//! (`sdk_clients`), plugins that abuse the v1 client (`v1_plugins`), v2 plugins that abuse
//! the manager on a private containerd (`manager_plugins`).
//!
//! Every case states its deadline, measures the time it took and, where they apply, the
//! descriptors and memory before and after, and prints one line of the table
//! (`hostile: <case> | deadline | measured | fds | rss`; run with `--nocapture` to see it).

mod manager_plugins;
mod measure;
mod sdk_clients;
mod v1_plugins;
