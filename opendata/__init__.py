"""Catalogs of real destinations from open data: Wikidata places with Wikimedia Commons photos.

One module per job: ``presets`` (what to ask for), ``wikidata`` (the SPARQL query and its results), ``commons``
(file metadata and thumbnails), ``licences`` (which photos may be used), ``http`` (a polite client), ``state``
(what a previous run fetched), ``output`` (catalog.csv and the report), ``build`` (the run) and ``cli``
(``wanderlens catalog build``).
"""
