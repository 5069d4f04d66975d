"""The bundled demo: a self-generated conversational corpus and the recipe that trains the small
model shipped in `app/demo/model/` (the default model of `flywheel up`)."""
