from reports_app.app import main

main()
