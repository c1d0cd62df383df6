site_name: infranode-demo
