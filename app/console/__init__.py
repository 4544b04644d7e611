"""The operator console: server-rendered pages under `/ui` for district support and
product teams, signed in with an API key holding `admin` or `console`."""
