/// What the services and the settings say about themselves when printed. swift-service-lifecycle logs every service
/// with `"\(service)"` at debug level, and a struct's default description prints every stored property, which here
/// includes the process environment (for `tokenEnv` grants), the admin token and `--upstream-header` values after
/// `${ENV}` expansion. These descriptions name what a reader needs and never a secret.

extension ServerConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        let headers = upstreamHeaders.map { "\($0.name): <redacted>" }
        return "ServerConfiguration(listen: \(listenHost):\(listenPort), upstream: \(upstreamShownURL), "
            + "upstreamHeaders: \(headers), grants: \(grants.map { "\($0.grants.count) grants" } ?? "none"), "
            + "adminToken: \(adminToken == nil ? "none" : "<redacted>"), failMode: \(failMode), shadow: \(shadow))"
    }

    public var debugDescription: String { description }
}

extension PolicyReloader: CustomStringConvertible {
    public var description: String { "PolicyReloader(policy: \(path), grants: \(grantsPath ?? "none"))" }
}

extension PolicyFileWatcher: CustomStringConvertible {
    public var description: String { "PolicyFileWatcher(paths: \(paths), interval: \(interval))" }
}

extension StdioFront: CustomStringConvertible {
    public var description: String { "StdioFront(stdin: fd \(input))" }
}

extension DrainGate: CustomStringConvertible {
    public var description: String { "DrainGate(timeout: \(timeout))" }
}
