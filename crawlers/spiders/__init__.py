"""The monitor's spiders: ``site``, ``sitemap``, ``feed`` and ``urls`` (see each module)."""
