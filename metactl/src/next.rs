// `metactl-next`: metactl built with the `next-format` feature, the "new version" a rolling
// upgrade test rolls onto (DESIGN §11). The same program as `metactl`; a binary of its own
// so that both sit in one target directory.

include!("main.rs");
