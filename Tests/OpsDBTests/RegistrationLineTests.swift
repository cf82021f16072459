import OpsDB
import Testing

@Suite("files register --batch lines")
struct RegistrationLineTests {
    static let sha = String(repeating: "ab", count: 32)

    @Test func linesEndInLFOrCRLFAndChecksumsAreLowerCased() throws {
        let text = "obs-1/a.fits\t10\t\(Self.sha.uppercased())\tobs-1\r\n\r\nobs-2/b c.fits\t0\t\(Self.sha)\tobs-2\tprimecam/mod-1\n"
        let lines = try RegistrationLine.parse(text)
        #expect(lines == [
            RegistrationLine(path: "obs-1/a.fits", size: 10, sha256: Self.sha, obsID: "obs-1", instrument: nil),
            RegistrationLine(path: "obs-2/b c.fits", size: 0, sha256: Self.sha, obsID: "obs-2", instrument: "primecam/mod-1"),
        ])
    }

    /// Each refusal names its line; a checksum in full-width digits (which `Character.isHexDigit`
    /// accepts) is not a checksum.
    @Test(arguments: [
        ("obs-1/a.fits\t10\t\(String(repeating: "\u{FF10}", count: 64))\tobs-1", 1),
        ("obs-1/a.fits\t10\t\(sha)\tobs-1\nobs-1/b.fits\t-1\t\(sha)\tobs-1", 2),
        ("obs-1/a.fits\t10\t\(sha)", 1),
        ("\n\nobs-1/../x\t10\t\(sha)\tobs-1", 3),
        ("obs-1/a.fits\t10\t\(sha)\tbad id", 1),
        ("obs-1/a\rb.fits\t10\t\(sha)\tobs-1\r\n", 1),
    ])
    func badLinesAreRefusedWithTheirNumber(_ text: String, _ line: Int) {
        let refused = #expect(throws: RegistrationLine.Refused.self) { try RegistrationLine.parse(text) }
        #expect(refused?.line == line, "\(String(describing: refused))")
        #expect(!RegistrationRules.isSHA256(String(repeating: "\u{FF10}", count: 64)))
    }
}
