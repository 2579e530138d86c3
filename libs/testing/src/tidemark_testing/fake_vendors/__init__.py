"""Local stand-ins for the REST vendors (HubSpot, Jira, Salesforce) that follow their documented
request and response shapes, paging, limits and errors, plus switches for the failures a real
account shows now and then (429 storms, 5xx bursts, tokens expiring mid-run)."""
