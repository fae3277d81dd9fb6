"""Test helpers other packages and users may reuse: a scripted OpenAI-compatible server.

Nothing here is imported by `import harness`; import `harness.testing.openai_server` explicitly.
"""
