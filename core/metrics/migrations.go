package metrics

// The module's collections are its own migrations, one file each, named
// "<unix time>_metrics_<what>.go" (see app.Module); importing the package
// registers them.
