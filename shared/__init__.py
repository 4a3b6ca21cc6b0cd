"""Portrait core: settings, database, models and the domain code the API and worker share."""
