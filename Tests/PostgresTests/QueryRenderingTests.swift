import Foundation
@testable import Postgres
import Testing

@Suite("Query rendering and value formats (pure logic)")
struct QueryRenderingTests {
    @Test func interpolatedValuesBecomeBinds() {
        let name = "x'; DROP TABLE site; --"
        let limit = 5
        let query: PostgresQuery = "SELECT * FROM site WHERE short_name = \(name) LIMIT \(limit)"
        #expect(query.sql == "SELECT * FROM site WHERE short_name = $1 LIMIT $2")
        #expect(query.binds == [PostgresBind(type: .text, text: name), PostgresBind(type: .int8, text: "5")])
        #expect(!query.description.contains("DROP"))
    }

    @Test func fragmentsAreRenumbered() {
        let first: PostgresQuery = "a = \(1)"
        let second: PostgresQuery = "b = \(2)"
        let whole: PostgresQuery = "SELECT \(3) WHERE \(PostgresQuery.joined([first, second], separator: " AND "))"
        #expect(whole.sql == "SELECT $1 WHERE a = $2 AND b = $3")
        #expect(whole.binds.map(\.text) == ["3", "1", "2"])
    }

    @Test func identifiersAreQuoted() {
        let query: PostgresQuery = "LISTEN \(identifier: "we\"ird channel")"
        #expect(query.sql == "LISTEN \"we\"\"ird channel\"")
        #expect(query.binds.isEmpty)
    }

    @Test func nilBindsAsNull() {
        let missing: String? = nil
        let query: PostgresQuery = "SELECT \(missing)"
        #expect(query.binds == [PostgresBind(type: .text, text: nil)])
    }

    @Test func arrayLiteralsRoundTrip() throws {
        let items: [String?] = ["plain", "with space", "quote\"d", "back\\slash", "comma,here", "{brace}", "NULL", nil, ""]
        let text = PostgresArrayLiteral.format(items)
        #expect(PostgresArrayLiteral.parse(text) == items)
        #expect(PostgresArrayLiteral.parse("{}") == [])
        #expect(PostgresArrayLiteral.parse("{a,NULL,\"b c\"}") == ["a", nil, "b c"])
        #expect(PostgresArrayLiteral.parse("{{1,2},{3,4}}") == nil)
        #expect(PostgresArrayLiteral.parse("not an array") == nil)
    }

    @Test func timestampsParseAndFormat() throws {
        let date = try #require(PostgresTimestamp.parse("2026-11-21 07:17:31.123456+00"))
        #expect(abs(date.timeIntervalSince1970 - 1_795_245_451.123456) < 1e-6)
        #expect(PostgresTimestamp.parse("2026-11-21 09:17:31.123456+02") == date)
        #expect(PostgresTimestamp.parse("2026-11-21 02:47:31.123456-04:30") == date)
        #expect(PostgresTimestamp.parse("1969-12-31 23:59:59+00")?.timeIntervalSince1970 == -1)
        #expect(PostgresTimestamp.parse("2026-11-21")?.timeIntervalSince1970 == 1_795_219_200)
        #expect(PostgresTimestamp.parse("infinity") == .distantFuture)
        #expect(PostgresTimestamp.parse("2026-13-01") == nil)
        #expect(PostgresTimestamp.parse("yesterday") == nil)
        #expect(PostgresTimestamp.format(date) == "2026-11-21 07:17:31.123456+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31 23:59:59.500000+00")
        // Year 1 BC is astronomical year 0; both directions agree.
        let ancient = try #require(PostgresTimestamp.parse("0044-03-15 12:00:00+00 BC"))
        #expect(PostgresTimestamp.format(ancient) == "0044-03-15 12:00:00.000000+00 BC")
        #expect(ancient < (PostgresTimestamp.parse("0001-01-01 00:00:00+00") ?? .distantPast))
    }

    @Test func snakeCaseMapping() {
        #expect(snakeCase("sizeBytes") == "size_bytes")
        #expect(snakeCase("dataLocationID") == "data_location_id")
        #expect(snakeCase("endpointURL") == "endpoint_url")
        #expect(snakeCase("obsID") == "obs_id")
        #expect(snakeCase("id") == "id")
    }

    @Test func redactionHidesEchoedValues() {
        let binds = [PostgresBind(type: .text, text: "hunter2-secret"), PostgresBind(type: .text, text: "ab")]
        let message = redact("invalid input syntax for type integer: \"hunter2-secret\" near \"ab\"", binds: binds)
        #expect(message == "invalid input syntax for type integer: \"$1\" near \"$2\"")
    }

    @Test func conninfoRedactionDropsPasswords() throws {
        #expect(!PostgresConnInfo.redacted("host=db.example password=s3cr3t dbname=ops").contains("s3cr3t"))
        #expect(!PostgresConnInfo.redacted("postgresql://ops:s3cr3t@db.example/ops").contains("s3cr3t"))
        #expect(PostgresConnInfo.redacted("host=a dbname='with space'") == "dbname='with space' host=a")
        #expect(throws: PostgresError.self) { try PostgresConnInfo.parse("host='unterminated") }
    }
}
