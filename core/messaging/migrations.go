package messaging

// The module's collections are its own migrations, one file each, named
// "<unix time>_messaging_<what>.go" (see app.Module); importing the package
// registers them.
