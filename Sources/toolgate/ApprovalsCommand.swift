import ArgumentParser
import Foundation
import ToolgateCore
import ToolgateServer
import ToolgateUpstream

/// `toolgate approvals list|approve ID|deny ID`: the admin API from a terminal (DESIGN.md sections 2 and 6).
struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approvals",
        abstract: "List and decide approvals through a sidecar's admin API.",
        subcommands: [List.self, Approve.self, Deny.self]
    )

    struct Connection: ParsableArguments {
        @Option(help: "The sidecar, e.g. http://127.0.0.1:8931.") var url: String
        @Option(name: .customLong("admin-token-file"), help: "File holding the admin token.") var adminTokenFile: String

        func token() throws -> String {
            do {
                return try ServeSettings.readAdminToken(adminTokenFile)
            } catch {
                throw ValidationError(error.lines.joined(separator: "\n"))
            }
        }

        /// Sends one admin request; the JSON answer and its status.
        func send(_ method: UpstreamRequest.Method, _ path: String, body: JSONValue? = nil) async throws -> (Int, JSONValue) {
            let base = url.hasSuffix("/") ? String(url.dropLast()) : url
            let transport = CurlUpstreamTransport(
                configuration: .init(connectTimeout: .seconds(5), headersTimeout: .seconds(30), idleTimeout: .seconds(30)))
            defer { transport.shutdown() }
            var headers = [HTTPHeader("Authorization", "Bearer " + (try token())), HTTPHeader("Accept", "application/json")]
            if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
            let response: UpstreamResponse
            do {
                response = try await transport.send(
                    UpstreamRequest(method: method, url: base + path, headers: headers, body: body.map(JSONWriter.bytes) ?? []))
            } catch {
                throw CLIFailure("cannot reach \(base): \(error.message)")
            }
            var bytes: [UInt8] = []
            do {
                while let chunk = try await response.body.next() { bytes += chunk }
            } catch {
                throw CLIFailure("\(base) broke off its answer: \(error.message)")
            }
            guard let value = try? JSONParser.parse(bytes) else {
                throw CLIFailure(
                    "\(base)\(path) answered HTTP \(response.status) without JSON: is this a toolgate sidecar started with --admin-token-file?")
            }
            return (response.status, value)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show approvals: pending, and decided ones not yet used or expired.")
        @OptionGroup var connection: Connection

        func run() async throws {
            // Every page, oldest first (the API gives 50 at a time).
            var approvals: [JSONValue] = []
            var after: String?
            repeat {
                let query = after.map { "?after=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0) } ?? ""
                let (status, value) = try await connection.send(.get, "/admin/approvals" + query)
                guard status == 200, let page = value["approvals"]?.arrayValue else { throw CLIFailure(Self.problem(status, value)) }
                approvals += page
                after = value["next"]?.stringValue
            } while after != nil && approvals.count < 100_000
            if approvals.isEmpty {
                print("no approvals")
                return
            }
            // Shown as the page shows them: invisible and direction-changing characters as escapes.
            func shown(_ value: JSONValue?) -> String {
                guard let value else { return "" }
                if case .string(let text) = value { return ArgumentDisplay.plain(ArgumentDisplay.text(text)) }
                return ArgumentDisplay.plain(ArgumentDisplay.text(JSONWriter.string(value)))
            }
            let rows = approvals.map { a in
                [shown(a["id"]), shown(a["state"]), shown(a["grant"]),
                 // A named server's tool as SERVER/TOOL: two servers may both have a `delete`.
                 (a["server"]?.stringValue.map { $0 + "/" } ?? "") + shown(a["tool"]), shown(a["expiresAt"]),
                 a["arguments"].map { ArgumentDisplay.plain(ArgumentDisplay.text(JSONWriter.string($0))) } ?? ""]
            }
            printTable(header: ["ID", "STATE", "GRANT", "TOOL", "EXPIRES", "ARGUMENTS"], rows: rows)
        }

        static func problem(_ status: Int, _ value: JSONValue) -> String {
            "HTTP \(status): " + (value["error"]?.stringValue ?? JSONWriter.string(value))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve one pending approval.")
        @OptionGroup var connection: Connection
        @Argument(help: "The approval id (from `list`, or a denial's approvalId).") var id: String

        func run() async throws { try await decide(connection, id: id, decision: "approve") }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny one pending approval.")
        @OptionGroup var connection: Connection
        @Argument(help: "The approval id.") var id: String

        func run() async throws { try await decide(connection, id: id, decision: "deny") }
    }

    static func decide(_ connection: Connection, id: String, decision: String) async throws {
        let path = "/admin/approvals/" + (id.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? id)
        let (status, value) = try await connection.send(.post, path, body: ["decision": .string(decision)])
        guard status == 200, let approval = value["approval"] else { throw CLIFailure(List.problem(status, value)) }
        print("\(approval["id"]?.stringValue ?? id): \(approval["state"]?.stringValue ?? "?") (\(approval["tool"]?.stringValue ?? "") for \(approval["grant"]?.stringValue ?? ""))")
    }
}

/// A failure the CLI explains in one line and exits 1 for.
struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Columns padded to their widest cell (by Unicode scalars; long argument texts are cut at 60).
func printTable(header: [String], rows: [[String]]) {
    let cells = ([header] + rows).map { row in row.map { $0.unicodeScalars.count > 60 ? String(String.UnicodeScalarView($0.unicodeScalars.prefix(59))) + "…" : $0 } }
    let widths = header.indices.map { column in cells.map { $0[column].unicodeScalars.count }.max() ?? 0 }
    for row in cells {
        let line = row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.unicodeScalars.count)
        }.joined(separator: "  ")
        print(line)
    }
}
