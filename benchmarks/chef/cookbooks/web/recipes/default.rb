directory '/srv/www' do
  mode '0755'
end

file '/srv/www/index.html' do
  content "<h1>Hello from chef</h1>\n"
  mode '0644'
end
