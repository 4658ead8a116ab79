# unde-httpd rules
