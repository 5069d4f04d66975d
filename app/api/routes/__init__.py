"""One APIRouter per resource; each is included in `app.api.main` by one line."""
