"""The platform's REST API (djangorestframework), over the same services and selectors
as the admin: versioned paths (/api/v1/...), staff or candidate authentication, page
numbers, one error shape, an OpenAPI schema. docs/recruiters.md has examples."""
