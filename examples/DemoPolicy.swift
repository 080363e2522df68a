/// `examples/policy.json`, compiled into the binary (SwiftPM `embedInCode`) so `toolgate demo` runs from any
/// directory. The JSON file stays the only copy.
public enum DemoPolicy {
    public static let fileName = "examples/policy.json"
    public static var bytes: [UInt8] { PackageResources.policy_json }
}
