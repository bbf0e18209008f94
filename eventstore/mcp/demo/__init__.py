"""The `eventstore demo` scenario: a real MCP server and client, a dropped connection, a resume."""
