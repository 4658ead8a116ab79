# catalog commands: unde-apify, unde-download, unde-collage
