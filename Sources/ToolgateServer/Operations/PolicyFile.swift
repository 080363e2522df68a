import Foundation
import ToolgateCore

/// Reads a policy from disk; parsing and checking are the core's. Used by `check`, `serve` and reloads.
public enum PolicyFile {
    public static func load(_ path: String) -> Result<Policy, PolicyValidationError> {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            return .failure(
                PolicyValidationError(errors: [PolicyError(file: path, path: "", message: "cannot read file: \(reason)")]))
        }
        return Result { () throws(PolicyValidationError) in try Policy.parse(bytes, file: path) }
    }

    /// A grants file (JSON, or YAML for `.yaml`/`.yml`), its `tokenEnv` entries read from `environment`.
    public static func loadGrants(_ path: String, environment: [String: String]) -> Result<GrantTable, PolicyValidationError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(PolicyValidationError(errors: [PolicyError(file: path, path: "", message: "cannot read file")]))
        }
        return Result { () throws(PolicyValidationError) in try GrantTable.parse(Array(data), file: path, environment: environment) }
    }
}

extension PolicyFile {
    /// A servers file (DESIGN.md section 10), its `${ENV}` references read from `environment`.
    public static func loadServers(
        _ path: String, environment: [String: String], expandingOnly: String? = nil
    ) -> Result<ServersFile, PolicyValidationError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(PolicyValidationError(errors: [PolicyError(file: path, path: "", message: "cannot read file")]))
        }
        return Result { () throws(PolicyValidationError) in try ServersFile.parse(Array(data), file: path, environment: environment, expandingOnly: expandingOnly)
        }
    }
}
